import ParaDiTModels
import ParaDiTTensor

/// `--cache fbcache:0.1` or `--cache teacache:0.2`: which step cache a generation uses, and its threshold.
public struct CacheSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Method: String, Sendable { case fbcache, teacache }
    public var method: Method
    public var threshold: Double

    /// The threshold of a bare method name, for either method: on the demo model the largest of those
    /// measured that keeps the classifier's accuracy and an image PSNR above 30 dB (docs/QUALITY.md).
    public static let defaultThreshold = 0.1

    /// "METHOD" or "METHOD:THRESHOLD" (threshold ≥ 0, finite); nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let method = Method(rawValue: parts[0]) else { return nil }
        guard parts.count == 2 else { (self.method, threshold) = (method, Self.defaultThreshold); return }
        guard let t = Double(parts[1]), t.isFinite, t >= 0 else { return nil }
        (self.method, threshold) = (method, t)
    }

    public var description: String { "\(method.rawValue):\(threshold)" }
}

/// A step cache: on steps where the model's input barely changed, reuse the residual the skipped
/// blocks produced at the last computed step.
///
/// - First-Block Cache (ParaAttention's FBCache): block 0 always runs; blocks 1… are skipped when
///   the relative L1 change of block 0's residual (its output minus its input, image stream) since
///   the last computed step is below the threshold.
/// - TeaCache: before any block, the relative L1 change of block 0's modulated input since the
///   previous step, rescaled by the model's published polynomial (`teaCacheCoefficients`: FLUX.1's;
///   none is published for DiT, PixArt or SD3, whose change is used as it is), is accumulated; while
///   the sum stays below the threshold every block is skipped, and a computed step resets it. The
///   first and last steps always compute.
///
/// The skipped blocks' residual is taken on the streams in the form the head reads (`headForm`: Flux's
/// joined text and image). The change is summed over every rank of the run before deciding, so all ranks skip the same
/// steps (CFG halves together, sequence shards adding up to the whole image); each rank keeps its own
/// shard of the residuals. Threshold 0 never skips: the uncached run bit for bit.
public final class StepCache {
    public let spec: CacheSpec
    /// The generation's steps (TeaCache computes the last).
    let steps: Int
    var step = 0
    /// FBCache: block 0's residual at the last computed step; TeaCache: the previous step's signal.
    var reference: Tensor?
    /// The skipped blocks' residual of every stream at the last computed step.
    var residual: [Tensor]?
    var accumulated = 0.0
    public private(set) var computed = 0, skipped = 0

    public init(_ spec: CacheSpec, steps: Int) { (self.spec, self.steps) = (spec, steps) }

    /// The blocks of one step on `state`, run or skipped. `change` sums (|Δ|, |previous|) over the
    /// ranks; `blocks` runs a range of blocks.
    func run<M: DiffusionTransformer>(_ model: M, _ state: inout M.State, change: ([Double]) throws -> [Double],
                                      blocks: (Range<Int>, inout M.State) throws -> Void) throws {
        defer { step += 1 }
        let (n, first) = (model.blockCount, spec.method == .fbcache ? 1 : 0)
        let signal: Tensor
        if spec.method == .fbcache {
            let entry = model.handOff(state, nextBlock: 0)[0].copy()  // a copy: blocks update it in place
            try blocks(0..<1, &state)
            signal = difference(model.handOff(state, nextBlock: 1)[0], entry)
        } else {
            guard let modulated = model.modulatedInput(state) else {
                throw ParallelError.unsupported("teacache: \(model.className) does not expose block 0's modulated input")
            }
            signal = modulated
        }
        // The streams the skipped blocks start from, in the form the head reads.
        let start = model.headForm(state)
        let before = model.handOff(start, nextBlock: n).map { $0.copy() }
        if try decide(signal, change: change, model: model), let residual {
            state = model.resume(start, from: zip(before, residual).map { b, r in
                let out = b.copy()
                addInPlace(out, r)
                return out
            })
            skipped += 1
            return
        }
        try blocks(first..<n, &state)
        residual = zip(model.handOff(state, nextBlock: n), before).map { difference($0, $1) }
        if spec.method == .fbcache { reference = signal }
        computed += 1
    }

    /// Whether this step may reuse the cache, given its signal (TeaCache also keeps it as the next
    /// step's reference; FBCache's reference changes only on computed steps).
    func decide<M: DiffusionTransformer>(_ signal: Tensor, change: ([Double]) throws -> [Double], model: M) throws -> Bool {
        switch spec.method {
        case .fbcache:
            guard spec.threshold > 0, residual != nil, let previous = reference, previous.shape == signal.shape else { return false }
            let sums = try change([l1Distance(signal, previous), l1Norm(previous)])
            return sums[1] > 0 && sums[0] / sums[1] < spec.threshold
        case .teacache:
            defer { reference = signal }
            guard spec.threshold > 0, residual != nil, step < steps - 1, let previous = reference, previous.shape == signal.shape else {
                accumulated = 0
                return false
            }
            let sums = try change([l1Distance(signal, previous), l1Norm(previous)])
            let relative = sums[1] > 0 ? sums[0] / sums[1] : 0
            // The published polynomial in Horner form (highest degree first), or the change itself.
            accumulated += model.teaCacheCoefficients.map { $0.reduce(0) { $0 * relative + $1 } } ?? relative
            if accumulated < spec.threshold { return true }
            accumulated = 0
            return false
        }
    }
}
