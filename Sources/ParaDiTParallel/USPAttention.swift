import ParaDiTDistributed
import ParaDiTModels
import ParaDiTTensor

/// Sequence-parallel attention (USP): Ulysses inside the ulysses group — one all-to-all turns
/// [local tokens, all heads] into [the group's tokens, this rank's heads] for q, k and v together,
/// and one turns the output back — and Ring across the ring group on the result. Ulysses alone is
/// ring = 1, Ring alone is ulysses = 1. Token and head counts need not divide: shards and head
/// slices are balanced splits and every exchange carries its exact counts, so nothing is padded.
///
/// Text tokens of a joint attention are split with the image (then they are ordinary shard rows)
/// or replicated on every rank: replicated text takes part in every rank's queries, is sliced by
/// heads locally instead of exchanged, its keys count once (at ring step 0), and its output heads
/// are all-gathered over the ulysses group.
public final class USPAttention: AttentionRuntime {
    let context: ParallelContext
    public let shards: SequenceShards
    let headSplit: (Int) -> [Range<Int>]

    public init(context: ParallelContext, shards: SequenceShards) {
        check(shards.degree == context.config.sequenceDegree, "shards for \(shards.degree) ranks, the sequence group has \(context.config.sequenceDegree)")
        self.context = context
        self.shards = shards
        let u = context.config.ulysses
        headSplit = { balancedSplit($0, parts: u) }
    }

    public func attention(_ c: AttentionCall) throws {
        check(c.queryTokens == c.keyTokens && c.keyMask == nil, "sequence-parallel attention is self-attention without a key mask")
        let text = c.textTokens ?? 0..<0
        let replicated = shards.textReplicated ? text : 0..<0
        let shardRows = replicated.isEmpty ? 0..<c.queryTokens
            : replicated.lowerBound == 0 ? replicated.upperBound..<c.queryTokens : 0..<replicated.lowerBound
        let joint = c.textTokens != nil
        let counts = (0..<shards.degree).map { shards.shardTokens($0, joint: joint) }
        guard counts[context.sequenceIndex] == shardRows.count else {
            throw ParallelError.unsupported("rank holds \(shardRows.count) tokens in attention, the plan gives it \(counts[context.sequenceIndex])")
        }
        // After Ulysses a ring rank holds the shards of its whole ulysses group.
        let u = context.config.ulysses, ringIndex = context.ringIndex
        let ringCounts = (0..<context.config.columns).map { r in counts[(r * u)..<((r + 1) * u)].reduce(0, +) }
        guard let ulysses = context.ulyssesGroup else {
            try ring(batch: c.batch, heads: c.heads, headDim: c.headDim, rows: c.queryTokens, q: c.q.data, ldq: c.ldq, k: c.k.data, ldk: c.ldk,
                     v: c.v.data, ldv: c.ldv, shardRows: shardRows, ringCounts: ringCounts, out: c.out.data, ldo: c.ldo, scale: c.scale)
            return
        }
        let exchange = UlyssesExchange(comm: ulysses, context: context, call: c, replicated: replicated, shardRows: shardRows,
                                       heads: headSplit(c.heads), peerCounts: Array(counts[(ringIndex * u)..<((ringIndex + 1) * u)]))
        let gathered = try exchange.scatterHeads()
        let out = Tensor(uninitialized: [c.batch * exchange.rows * exchange.width])
        try withExtendedLifetime(gathered) {
            let ld = 3 * exchange.width, base = UnsafePointer(gathered.data)
            try ring(batch: c.batch, heads: exchange.myHeads.count, headDim: c.headDim, rows: exchange.rows,
                     q: base, ldq: ld, k: base + exchange.width, ldk: ld, v: base + 2 * exchange.width, ldv: ld,
                     shardRows: replicated.count..<exchange.rows, ringCounts: ringCounts, out: out.data, ldo: exchange.width, scale: c.scale)
        }
        try exchange.gatherHeads(out)
    }

    /// The ring stage (or, with ring = 1, the fused kernel on the rows at hand).
    func ring(batch: Int, heads: Int, headDim: Int, rows: Int, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
              v: UnsafePointer<Float>, ldv: Int, shardRows: Range<Int>, ringCounts: [Int],
              out: UnsafeMutablePointer<Float>, ldo: Int, scale: Float) throws {
        switch (context.plan.columns, context.ringGroup) {
        case let (.torus, group?):
            try TorusAttention(comm: group, context: context)(
                batch: batch, heads: heads, headDim: headDim, rows: rows, q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv,
                shardRows: shardRows, shardCounts: ringCounts, out: out, ldo: ldo, scale: scale)
        case let (.ring, group?):
            try RingAttention(comm: group, context: context)(
                batch: batch, heads: heads, headDim: headDim, rows: rows, q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv,
                shardRows: shardRows, shardCounts: ringCounts, out: out, ldo: ldo, scale: scale)
        default:
            context.span("attention") {
                ParaDiTTensor.attention(batch: batch, heads: heads, lq: rows, lk: rows, headDim: headDim, q: q, ldq: ldq, k: k, ldk: ldk,
                                        v: v, ldv: ldv, out: out, ldo: ldo, lse: nil, scale: scale)
            }
        }
    }
}

extension AttentionCall {
    /// Row strides of the operands, for the exchanges that copy them.
    var ldq: Int { q.rowStride }
    var ldk: Int { k.rowStride }
    var ldv: Int { v.rowStride }
    var ldo: Int { out.rowStride }
}
