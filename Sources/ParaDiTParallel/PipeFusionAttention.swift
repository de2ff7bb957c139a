import ParaDiTModels
import ParaDiTTensor

/// Where the tokens of the patch in flight lie in the whole sequence, for each rank of the
/// stage's sequence-parallel group (one entry without sequence parallelism).
public struct PatchShards: Equatable, Sendable {
    public var image: [Range<Int>]
    public var text: [Range<Int>]

    /// The patch's image and text tokens split evenly over `degree` ranks.
    public init(image: Range<Int>, text: Range<Int>, degree: Int) {
        self.image = balancedSplit(image.count, parts: degree).map { ($0.lowerBound + image.lowerBound)..<($0.upperBound + image.lowerBound) }
        self.text = balancedSplit(text.count, parts: degree).map { ($0.lowerBound + text.lowerBound)..<($0.upperBound + text.lowerBound) }
    }

    /// Rows rank r holds in an attention call (joint calls include its text).
    func rows(_ r: Int, joint: Bool) -> Int { image[r].count + (joint ? text[r].count : 0) }
}

/// PipeFusion's attention in one pipeline stage: every self-attention layer of the stage keeps a
/// K/V buffer of the whole sequence ([text; image] tokens, this rank's heads). A patch's pass
/// writes its fresh K/V into its slice of the buffer and attends to the whole buffer, whose other
/// slices hold what the other patches left there: this step's for patches already through the
/// stage, the previous step's for the rest. A pass of the whole image refreshes every slice, so
/// synchronous (warm-up) steps equal serial. Stale K/V stay where they were computed.
///
/// Inside a stage the patch's tokens may be split over a sequence-parallel group (xDiT's hybrid):
/// Ulysses turns [local tokens, all heads] into [the ulysses group's tokens, this rank's heads],
/// and the ring group all-gathers those K/V, so that every rank writes the fresh K/V of all its
/// peers' tokens, for its heads, into its buffer.
public final class PipeFusionAttention: AttentionRuntime {
    let context: ParallelContext
    /// Text tokens and image tokens of the whole sequence.
    let textTokens: Int, imageTokens: Int
    var patch = PatchShards(image: 0..<0, text: 0..<0, degree: 1)
    var layer = 0
    /// One buffer per attention layer: [batch, text + image tokens, 2·width] (K then V per token).
    var buffers: [Tensor] = []

    public init(context: ParallelContext, textTokens: Int, imageTokens: Int) {
        (self.context, self.textTokens, self.imageTokens) = (context, textTokens, imageTokens)
    }

    /// Called before a patch's pass through the stage's blocks.
    public func begin(_ patch: PatchShards) {
        (self.patch, layer) = (patch, 0)
    }

    public func attention(_ c: AttentionCall) throws {
        check(c.queryTokens == c.keyTokens && c.keyMask == nil, "PipeFusion attention is self-attention without a key mask")
        // Joint calls carry the patch's text tokens; image-only calls (SD3.5's second attention) do not.
        let joint = c.textTokens != nil, me = context.sequenceIndex
        let counts = patch.image.indices.map { patch.rows($0, joint: joint) }
        guard c.queryTokens == counts[me], (c.textTokens?.count ?? 0) == (joint ? patch.text[me].count : 0) else {
            throw ParallelError.unsupported("a patch pass of \(c.queryTokens) tokens, but the patch gives this rank \(counts[me])")
        }
        var exchange: UlyssesExchange?
        var ops = AttentionOperands(c)
        if let group = context.ulyssesGroup {
            let u = context.config.ulysses, ring = context.ringIndex
            let x = UlyssesExchange(comm: group, context: context, call: c, replicated: 0..<0, shardRows: 0..<c.queryTokens,
                                    heads: balancedSplit(c.heads, parts: u), peerCounts: Array(counts[(ring * u)..<((ring + 1) * u)]))
            let g = try x.scatterHeads().reshaped([-1, 3 * x.width]), w = x.width
            let out = Tensor(uninitialized: [c.batch * x.rows, w])
            ops = AttentionOperands(batch: c.batch, heads: x.myHeads.count, headDim: c.headDim, q: g.columns(0..<w), k: g.columns(w..<(2 * w)),
                                    v: g.columns((2 * w)..<(3 * w)), out: out.allColumns, precision: c.precision)
            exchange = x
        }
        let keys = try buffer(batch: c.batch, width: ops.width, joint: joint)
        try refresh(keys, ops, counts: counts, joint: joint, textFirst: c.textTokens?.lowerBound == 0)
        context.span("attention") {
            ParaDiTTensor.attention(batch: c.batch, heads: ops.heads, headDim: c.headDim, q: ops.q, k: keys.columns(0..<ops.width),
                                    v: keys.columns(ops.width..<(2 * ops.width)), out: ops.out, scale: c.scale,
                                    precision: c.precision)
        }
        if let exchange { try exchange.gatherHeads(ops.out.tensor) }
    }

    /// This layer's buffer: [batch, (joint ? text : 0) + image, 2·width], made at the layer's
    /// first pass, which must be of the whole image.
    func buffer(batch b: Int, width: Int, joint: Bool) throws -> Tensor {
        let shape = [b, (joint ? textTokens : 0) + imageTokens, 2 * width]
        if layer == buffers.count {
            guard patch.image.reduce(0, { $0 + $1.count }) == imageTokens else {
                throw ParallelError.unsupported("PipeFusion's first step must be a synchronous pass of the whole image")
            }
            buffers.append(Tensor(uninitialized: shape))
        }
        layer += 1
        guard buffers[layer - 1].shape == shape else {
            throw ParallelError.unsupported("attention layer \(layer - 1) changed shape between patches: \(buffers[layer - 1].shape) vs \(shape)")
        }
        return buffers[layer - 1]
    }

    /// Writes the fresh K/V of every rank of the sequence group into the buffer: this ring
    /// position's rows are in `ops`; the other ring positions' arrive by an all-gather.
    func refresh(_ keys: Tensor, _ ops: AttentionOperands, counts: [Int], joint: Bool, textFirst: Bool) throws {
        let (u, b, width) = (context.config.ulysses, ops.batch, ops.width)
        let columns = counts.count / u
        let ringRows = (0..<columns).map { r in counts[(r * u)..<((r + 1) * u)].reduce(0, +) }
        // Each ring position's K|V rows [b, its rows, 2·width] when gathered; nil: read from ops.
        var blocks: [Tensor?] = [nil]
        if let ring = context.ringGroup {
            let local = Tensor(uninitialized: [b, ops.rows, 2 * width])
            for i in 0..<b { ops.packKV(i, rows: 0..<ops.rows, into: local[i].allColumns) }
            let all = try ops.wire.allGather(local, counts: ringRows.map { b * $0 * 2 * width }, over: ring)
            var at = 0
            blocks = (0..<columns).map { r in
                defer { at += b * ringRows[r] * 2 * width }
                return all.block(at, [b, ringRows[r], 2 * width])
            }
        }
        for (column, block) in blocks.enumerated() {
            var row = 0
            for r in (column * u)..<((column + 1) * u) {
                let text = joint ? patch.text[r] : 0..<0, image = patch.image[r]
                // Each rank's rows are its text and image tokens in the model's order.
                let parts = textFirst ? [(text.count, text.lowerBound), (image.count, keys.size(1) - imageTokens + image.lowerBound)]
                                      : [(image.count, keys.size(1) - imageTokens + image.lowerBound), (text.count, text.lowerBound)]
                for (n, at) in parts where n > 0 {
                    for i in 0..<b {
                        let dst = keys[i].rows(at..<(at + n)).allColumns
                        if let block { copy(block[i].rows(row..<(row + n)).allColumns, into: dst) }
                        else { ops.packKV(i, rows: row..<(row + n), into: dst) }
                    }
                    row += n
                }
            }
        }
    }
}
