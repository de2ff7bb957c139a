import ParaDiTDistributed
import ParaDiTModels
import ParaDiTTensor

/// DistriFusion's displaced patch parallelism as an attention runtime: every rank holds the whole
/// model and one patch of image tokens; its queries attend to its own fresh K/V and to the other
/// patches' K/V from the previous step. Right after a layer's attention the rank starts a
/// non-blocking all-gather of its fresh K/V, awaited only when that layer runs in the next step, so
/// the exchange hides behind a whole step of compute. During warm-up steps the all-gather is
/// synchronous and every K/V is fresh: the output then equals serial.
///
/// Text of joint attention (SD3, Flux) is replicated: its K/V are always fresh and local.
public final class DistriFusionAttention: AttentionRuntime {
    let context: ParallelContext
    let comm: Communicator
    public let shards: SequenceShards
    /// Steps run synchronously before K/V may be stale.
    public let warmupSteps: Int
    public private(set) var step = -1
    var layer = 0
    var slots: [Slot] = []

    /// One attention layer's exchange: this rank's K|V of the last step (kept alive while the
    /// gather runs) and everyone's, blocks in rank order [rank][batch][tokens][2·width].
    final class Slot {
        var local: Tensor
        let gathered: Tensor
        var pending: CommRequest?
        init(local: Tensor, gathered: Tensor) { (self.local, self.gathered) = (local, gathered) }
    }

    public init(context: ParallelContext, shards: SequenceShards, warmupSteps: Int) {
        check(shards.text == nil, "DistriFusion keeps the text replicated")
        self.context = context
        comm = context.patchGroup!
        (self.shards, self.warmupSteps) = (shards, warmupSteps)
    }

    /// Called before each denoising step's forward pass.
    public func beginStep() {
        step += 1
        layer = 0
    }

    var synchronous: Bool { step < warmupSteps }

    public func attention(_ c: AttentionCall) throws {
        check(c.queryTokens == c.keyTokens && c.keyMask == nil, "DistriFusion attention is self-attention without a key mask")
        let text = c.textTokens ?? 0..<0
        let mine = text.isEmpty ? 0..<c.queryTokens : text.lowerBound == 0 ? text.upperBound..<c.queryTokens : 0..<text.lowerBound
        let (b, width, me) = (c.batch, c.heads * c.headDim, comm.rank)
        let counts = shards.image.map { b * $0.count * 2 * width }, wire = WireFormat(c.precision)
        guard shards.image[me].count == mine.count else {
            throw ParallelError.unsupported("rank holds \(mine.count) tokens in attention, the plan gives it \(shards.image[me].count)")
        }
        let x = AttentionOperands(c)
        let local = Tensor(uninitialized: [b, mine.count, 2 * width])
        for i in 0..<b { x.packKV(i, rows: mine, into: local[i].allColumns) }
        let sent = wire.encode(local)
        if layer == slots.count { slots.append(Slot(local: sent, gathered: wire.buffer(counts))) }
        let slot = slots[layer]
        layer += 1
        if synchronous {
            try slot.pending?.wait()
            slot.local = sent
            try comm.allGather(sent, into: slot.gathered, counts: wire.slots(counts))
            slot.pending = nil
        } else if let pending = slot.pending {
            let bytes = 4 * (wire.slots(counts).reduce(0, +) - wire.slots(counts[me]))
            try context.wait(pending, "stale K/V of layer \(layer - 1)", posted: nil, bytes: bytes)
            slot.pending = nil
        }
        try attend(x, text: text, fresh: local, gathered: wire.decode(slot.gathered, blocks: counts), counts: counts,
                   scale: c.scale)
        if !synchronous {
            slot.local = sent
            slot.pending = try comm.iallGather(sent, into: slot.gathered, counts: wire.slots(counts))
        }
    }

    /// Local queries over [text (fresh); every patch's K/V, this rank's fresh]; `gathered`: every
    /// rank's K/V as last gathered, blocks of `counts` values in rank order.
    func attend(_ x: AttentionOperands, text: Range<Int>, fresh: Tensor, gathered: Tensor, counts: [Int],
                scale: Float) throws {
        let (b, width, t) = (x.batch, x.width, text.count), total = shards.image.last!.upperBound
        let keys = Tensor(uninitialized: [b, t + total, 2 * width])
        for i in 0..<b { x.packKV(i, rows: text, into: keys[i].rows(0..<t).allColumns) }
        var src = 0
        for (r, range) in shards.image.enumerated() {
            let block = r == comm.rank ? fresh : gathered.block(src, [b, range.count, 2 * width])
            copySequence(block, into: keys, at: t + range.lowerBound)
            src += counts[r]
        }
        context.span("attention") {
            ParaDiTTensor.attention(batch: b, heads: x.heads, headDim: x.headDim, q: x.q, k: keys.columns(0..<width),
                                    v: keys.columns(width..<(2 * width)), out: x.out, scale: scale,
                                    precision: x.precision)
        }
    }

    /// Completes every gather still in flight (at the end of a generation).
    public func finish() throws {
        for slot in slots { try slot.pending?.wait(); slot.pending = nil }
    }
}
