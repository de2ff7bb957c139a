import ParaDiTModels
import ParaDiTTensor

/// `--cache fbcache:0.08`: which step cache a generation uses, and its threshold.
public struct CacheSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Method: String, Sendable { case fbcache }
    public var method: Method
    public var threshold: Double

    /// The threshold of a bare `fbcache`: on the demo model the largest of those measured that keeps
    /// the classifier's accuracy and an image PSNR above 30 dB against the uncached run (docs/QUALITY.md).
    public static let defaultThreshold = 0.1

    /// "fbcache" or "fbcache:THRESHOLD" (threshold ≥ 0, finite); nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let method = Method(rawValue: parts[0]) else { return nil }
        guard parts.count == 2 else { (self.method, threshold) = (method, Self.defaultThreshold); return }
        guard let t = Double(parts[1]), t.isFinite, t >= 0 else { return nil }
        (self.method, threshold) = (method, t)
    }

    public var description: String { "\(method.rawValue):\(threshold)" }
}

/// First-Block Cache (ParaAttention's FBCache): every step runs block 0; when the relative L1
/// change of block 0's residual (its output minus its input) since the last fully computed step is
/// below the threshold, the other blocks are skipped and their residual from that step is added
/// instead. The change is measured on the image stream, summed over every rank of the run (so all
/// ranks skip the same steps: under CFG parallel both halves decide together, under sequence
/// parallelism the shards add up to the whole image); the cached residuals are each rank's own
/// shard of every stream. Threshold 0 never skips, so it is the uncached run bit for bit.
public final class FirstBlockCache {
    public let threshold: Double
    /// Block 0's residual of the image stream at the last fully computed step (this rank's shard).
    var firstResidual: Tensor?
    /// Every stream's residual over blocks 1… at that step.
    var rest: [Tensor]?
    public private(set) var computed = 0, skipped = 0

    public init(threshold: Double) { self.threshold = threshold }

    /// Whether a model's streams have the same form after block 0 and before the head, which the
    /// residual of the other blocks needs (Flux joins its two streams midway: not yet cached).
    public static func supports(_ model: any DiffusionTransformer, batch: Int, imageTokens: Int, textTokens: Int) -> Bool {
        model.handOffShapes(nextBlock: 1, batch: batch, imageTokens: imageTokens, textTokens: textTokens)
            == model.handOffShapes(nextBlock: model.blockCount, batch: batch, imageTokens: imageTokens, textTokens: textTokens)
    }

    /// Runs blocks 1… on `state` (after block 0, whose input streams were `before`) or skips them.
    /// `change` sums (|Δ residual|, |previous residual|) over the ranks.
    func runRest<M: DiffusionTransformer>(_ model: M, _ state: inout M.State, before: [Tensor],
                                          change: ([Double]) throws -> [Double], blocks: (inout M.State) throws -> Void) throws {
        let after = model.handOff(state, nextBlock: 1).map { $0.copy() }
        let residual = difference(after[0], before[0])
        var skip = false
        if threshold > 0, let previous = firstResidual, let rest, previous.shape == residual.shape {
            let sums = try change([l1Distance(residual, previous), l1Norm(previous)])
            skip = sums[1] > 0 && sums[0] / sums[1] < threshold
            if skip {
                state = model.resume(state, from: zip(after, rest).map { a, r in
                    let out = a.copy()
                    addInPlace(out, r)
                    return out
                })
            }
        }
        if skip {
            skipped += 1
            return
        }
        try blocks(&state)
        let final = model.handOff(state, nextBlock: model.blockCount)
        (firstResidual, rest) = (residual, zip(final, after).map { difference($0, $1) })
        computed += 1
    }
}
