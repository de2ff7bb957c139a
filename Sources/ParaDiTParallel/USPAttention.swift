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
            try ring(AttentionOperands(c), shardRows: shardRows, ringCounts: ringCounts, scale: c.scale)
            return
        }
        let exchange = UlyssesExchange(comm: ulysses, context: context, call: c, replicated: replicated, shardRows: shardRows,
                                       heads: headSplit(c.heads), peerCounts: Array(counts[(ringIndex * u)..<((ringIndex + 1) * u)]))
        let gathered = try exchange.scatterHeads().reshaped([-1, 3 * exchange.width])
        let out = Tensor(uninitialized: [c.batch * exchange.rows, exchange.width])
        let w = exchange.width
        let operands = AttentionOperands(batch: c.batch, heads: exchange.myHeads.count, headDim: c.headDim,
                                         q: gathered.columns(0..<w), k: gathered.columns(w..<(2 * w)),
                                         v: gathered.columns((2 * w)..<(3 * w)), out: out.allColumns,
                                         precision: c.precision)
        try ring(operands, shardRows: replicated.count..<exchange.rows, ringCounts: ringCounts, scale: c.scale)
        try exchange.gatherHeads(out)
    }

    /// The ring stage (or, with ring = 1, the fused kernel on the rows at hand): the operands hold
    /// `batch` samples of the same rows.
    func ring(_ x: AttentionOperands, shardRows: Range<Int>, ringCounts: [Int], scale: Float) throws {
        switch (context.plan.columns, context.ringGroup) {
        case let (.torus, group?):
            try TorusAttention(comm: group, context: context)(x, shardRows: shardRows, shardCounts: ringCounts,
                                                              scale: scale)
        case let (.ring, group?):
            try RingAttention(comm: group, context: context)(x, shardRows: shardRows, shardCounts: ringCounts,
                                                             scale: scale)
        default:
            context.span("attention") {
                ParaDiTTensor.attention(batch: x.batch, heads: x.heads, headDim: x.headDim, q: x.q, k: x.k, v: x.v,
                                        out: x.out, scale: scale, precision: x.precision)
            }
        }
    }
}

/// One attention call's operands as the exchanges see them: `batch` samples of `rows` rows each
/// in q, k, v and out, heads · headDim columns.
struct AttentionOperands {
    let batch: Int, heads: Int, headDim: Int
    let q: StridedView, k: StridedView, v: StridedView, out: StridedView
    let precision: AttentionPrecision

    init(batch: Int, heads: Int, headDim: Int, q: StridedView, k: StridedView, v: StridedView, out: StridedView,
         precision: AttentionPrecision) {
        (self.batch, self.heads, self.headDim, self.q, self.k, self.v, self.out) = (batch, heads, headDim, q, k, v, out)
        self.precision = precision
    }

    init(_ c: AttentionCall) {
        self.init(batch: c.batch, heads: c.heads, headDim: c.headDim, q: c.q, k: c.k, v: c.v, out: c.out,
                  precision: c.precision)
    }

    var wire: WireFormat { WireFormat(precision) }

    var rows: Int { q.rows / batch }
    var width: Int { heads * headDim }

    /// Rows `range` of sample i of x, columns `columns` (all by default).
    func sample(_ x: StridedView, _ i: Int, rows range: Range<Int>, columns: Range<Int>? = nil) -> StridedView {
        let v = x.rows((i * rows + range.lowerBound)..<(i * rows + range.upperBound))
        return columns.map { v.columns($0) } ?? v
    }

    /// Sample i's K|V rows `range` into a [rows, 2·width] view.
    func packKV(_ i: Int, rows range: Range<Int>, into dst: StridedView) {
        copy(sample(k, i, rows: range), into: dst.columns(0..<width))
        copy(sample(v, i, rows: range), into: dst.columns(width..<(2 * width)))
    }
}
