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
/// The skipped blocks' residual is taken on the streams in the form the next block or the head
/// reads (`prepared`: Flux's joined text and image). The change is summed over every rank that holds
/// a share of the pass before deciding, so all of them skip alike (CFG halves together, sequence
/// shards adding up to the whole image); each rank keeps its own shard of the residuals.
///
/// PipeFusion caches per patch: every region of tokens a pass covers (the whole image, or one
/// patch) has its own entry: the stage holding block 0 decides on the patch's own change since
/// its last pass, and the decision travels with the patch's activations; every stage keeps the
/// residual of its own blocks for that patch. Skipped blocks leave their stale K/V as they were.
/// Threshold 0 never skips: the uncached run bit for bit.
public final class StepCache {
    public let spec: CacheSpec
    /// The generation's steps (TeaCache computes the last).
    let steps: Int
    /// Steps run through `run` (a whole-image forward each).
    var step = 0
    var entries: [Range<Int>: Entry] = [:]
    /// Steps computed and skipped; a PipeFusion patch counts as its share of a step.
    public private(set) var computed = 0.0, skipped = 0.0

    /// What one region of tokens keeps between its passes.
    final class Entry {
        /// FBCache: block 0's residual at the last computed pass; TeaCache: the previous pass's signal.
        var reference: Tensor?
        /// The residual of this rank's skippable blocks, per stream, at the last computed pass.
        var residual: [Tensor]?
        var accumulated = 0.0
    }

    public init(_ spec: CacheSpec, steps: Int) { (self.spec, self.steps) = (spec, steps) }

    /// One step's blocks on the whole image (`state` holds this rank's tokens of it), run or skipped.
    /// `change` sums (|Δ|, |previous|) over the ranks; `blocks` runs a range of blocks.
    func run<M: DiffusionTransformer>(_ model: M, _ state: inout M.State, change: ([Double]) throws -> [Double],
                                      blocks: (Range<Int>, inout M.State) throws -> Void) throws {
        defer { step += 1 }
        _ = try pass(model, &state, blocks: 0..<model.blockCount, region: 0..<Int.max, step: step, share: 1, decided: nil,
                     change: change, run: blocks)
    }

    /// Blocks `range` of one pass over the tokens `region` at denoising step `step`, worth `share` of
    /// a step. The rank holding block 0 decides (`decided` nil); the others are told. Returns whether
    /// the pass skipped.
    func pass<M: DiffusionTransformer>(_ model: M, _ state: inout M.State, blocks range: Range<Int>, region: Range<Int>,
                                       step: Int, share: Double, decided: Bool?, change: ([Double]) throws -> [Double],
                                       run: (Range<Int>, inout M.State) throws -> Void) throws -> Bool {
        let entry = entries[region] ?? Entry()
        entries[region] = entry
        var (rest, skip, signal) = (range, decided ?? false, Tensor?.none)
        if decided == nil {
            check(range.lowerBound == 0, "a step cache decides on the rank holding block 0")
            if spec.method == .fbcache {
                let entrance = model.handOff(state, nextBlock: 0)[0].copy()  // a copy: blocks update it in place
                try run(0..<1, &state)
                signal = difference(model.handOff(state, nextBlock: 1)[0], entrance)
                rest = 1..<range.upperBound
            } else {
                guard let modulated = model.modulatedInput(state) else {
                    throw ParallelError.unsupported("teacache: \(model.className) does not expose block 0's modulated input")
                }
                signal = modulated
            }
            skip = try decide(entry, signal!, step: step, change: change, model: model)
        }
        let start = model.prepared(state, forBlock: rest.upperBound)
        let before = model.handOff(start, nextBlock: rest.upperBound).map { $0.copy() }
        if skip {
            guard let residual = entry.residual else {
                throw ParallelError.unsupported("step cache: told to skip tokens \(region) that were never computed here")
            }
            state = model.resume(start, from: zip(before, residual).map { b, r in
                let out = b.copy()
                addInPlace(out, r)
                return out
            })
            skipped += share
            return true
        }
        try run(rest, &state)
        entry.residual = zip(model.handOff(state, nextBlock: rest.upperBound), before).map { difference($0, $1) }
        if spec.method == .fbcache, let signal { entry.reference = signal }
        computed += share
        return false
    }

    /// Whether this pass may reuse the cache, given its signal (TeaCache also keeps it as the next
    /// pass's reference; FBCache's reference changes only on computed passes).
    func decide<M: DiffusionTransformer>(_ entry: Entry, _ signal: Tensor, step: Int, change: ([Double]) throws -> [Double],
                                         model: M) throws -> Bool {
        switch spec.method {
        case .fbcache:
            guard spec.threshold > 0, entry.residual != nil, let previous = entry.reference, previous.shape == signal.shape else {
                return false
            }
            let sums = try change([l1Distance(signal, previous), l1Norm(previous)])
            return sums[1] > 0 && sums[0] / sums[1] < spec.threshold
        case .teacache:
            defer { entry.reference = signal }
            guard spec.threshold > 0, entry.residual != nil, step < steps - 1, let previous = entry.reference,
                  previous.shape == signal.shape else {
                entry.accumulated = 0
                return false
            }
            let sums = try change([l1Distance(signal, previous), l1Norm(previous)])
            let relative = sums[1] > 0 ? sums[0] / sums[1] : 0
            // The published polynomial in Horner form (highest degree first), or the change itself.
            entry.accumulated += model.teaCacheCoefficients.map { $0.reduce(0) { $0 * relative + $1 } } ?? relative
            if entry.accumulated < spec.threshold { return true }
            entry.accumulated = 0
            return false
        }
    }
}
