import ParaDiTDistributed
import ParaDiTTensor

/// Torus attention with one-sided transfers (`--one-sided`): the rounds of `TorusAttention`, but a
/// node writes its rows' q, k, v for node t's heads straight into t's working buffer Z (t's window)
/// at the rows that block occupies there, so nothing is unpacked on arrival; the outputs go back
/// into a region of the origin's window the same way.
///
/// Counters of node t (m nodes): j "Z block from node j is in place", m + j "outputs from node j
/// are in place", 2m + j "node j has finished its previous call: its window may be written". A
/// node notifies every other node once it has read its Z and its returned outputs; a node writes
/// into t's window in call c only after t's c-th such notification. One notification per kind,
/// node and call, so the counts to wait for are the call number.
///
/// Under BF16 (`WireFormat`) the window holds the same layout at two bytes a value, and each block
/// is widened into a local Z on arrival. That needs every block to start on a whole Float slot, which
/// an even head dimension gives; an odd one keeps the Float32 window.
struct OneSidedTorusAttention {
    let comm: Communicator
    let context: ParallelContext

    func callAsFunction(_ x: AttentionOperands, shardRows: Range<Int>, shardCounts: [Int], scale: Float) throws {
        let b = x.batch
        let plan = TorusPlan(m: comm.size, me: comm.rank, heads: x.heads, headDim: x.headDim, rows: x.rows, shardRows: shardRows,
                             shardCounts: shardCounts)
        let wire = x.headDim % 2 == 0 ? x.wire : WireFormat(.f32)
        let layout = TorusWindowLayout(plan: plan, batch: b, wire: wire)
        let (m, me) = (plan.m, plan.me)
        let channel = try context.channel([1, b, x.heads, x.headDim, plan.textRows.count,
                                           wire.bytesPerValue] + shardCounts,
                                          comm: comm, count: wire.slots(layout.size(me)), slots: 3 * m)
        let (w, call) = (channel.window, channel.calls)
        let z = wire.precision == .f32 ? w.memory.block(0, [b, plan.total, 3 * plan.width])
            : Tensor(uninitialized: [b, plan.total, 3 * plan.width])
        plan.fillLocal(x, into: z)
        let o = Tensor(uninitialized: [b, plan.total, plan.width])
        let lse = (0..<m).map { Tensor(uninitialized: [b * plan.myHeads * plan.blockRows($0)]) }
        var posted: Double?
        for s in 0..<m {
            if s > 0 {
                let from = plan.origin(s), slots = wire.slots(b * plan.blockRows(s) * 3 * plan.width)
                try context.wait("torus block of node \(from)", posted: posted, bytes: 4 * slots) {
                    try w.waitNotify(from, reaching: call + 1, from: from, floats: slots)
                }
                if wire.precision != .f32 { widen(block: s, plan: plan, layout: layout, window: w, into: z) }
            }
            if s + 1 < m {
                try putRound(s + 1, plan: plan, layout: layout, channel: channel, x)
                posted = context.tracer?.now()
            }
            context.span("torus attention round \(s)") {
                plan.attendRound(s, batch: b, scale: scale, precision: x.precision, z: z, o: o, lse: lse)
            }
        }
        try sendBack(plan: plan, layout: layout, channel: channel, x, o: o)
        for j in 0..<m where j != me { try w.notify(j, slot: 2 * m + me) }
        channel.calls += 1
        try TorusAttention(comm: comm, context: context).gatherText(plan: plan, x, o: o)
    }

    /// Block s of this node's Z, as it arrived in BF16, widened into z.
    func widen(block s: Int, plan: TorusPlan, layout: TorusWindowLayout, window w: NotifiedWindow, into z: Tensor) {
        let values = plan.blockRows(s) * 3 * plan.width
        for i in 0..<layout.batch {
            let at = layout.zOffset(node: plan.me, block: s, sample: i)
            unpackBFloat16(w.memory.block(at / 2, [bfloat16Slots(values)]), into: z.block(at, [values]))
        }
    }

    /// Round s: this rank's rows for node me + s's heads, into block s of that node's Z.
    func putRound(_ s: Int, plan: TorusPlan, layout: TorusWindowLayout, channel: OneSidedChannel, _ x: AttentionOperands) throws {
        let (m, me, w) = (plan.m, plan.me, channel.window)
        let to = (me + s) % m
        try context.wait("torus window of node \(to) free", posted: nil, bytes: 0) {
            try w.waitNotify(2 * m + to, reaching: channel.calls, from: to, floats: 0)
        }
        let block = plan.pack(x, forNode: to), wire = layout.wire
        for i in 0..<x.batch {
            try w.put(wire.encode(block[i]), to: to, offset: wire.slots(layout.zOffset(node: to, block: s, sample: i)),
                      notify: i == x.batch - 1 ? me : nil)
        }
    }

    /// Every received block's outputs into its origin's window; then this rank's rows, all heads.
    func sendBack(plan: TorusPlan, layout: TorusWindowLayout, channel: OneSidedChannel, _ x: AttentionOperands, o: Tensor) throws {
        let (m, me, w, call, b, wire) = (plan.m, plan.me, channel.window, channel.calls, x.batch, layout.wire)
        for s in 1..<m {
            let origin = plan.origin(s), rows = plan.starts[s]..<(plan.starts[s] + plan.blockRows(s))
            for i in 0..<b {
                let at = layout.backOffset(node: origin, from: me) + i * rows.count * plan.width
                try w.put(wire.encode(o[i].rows(rows)), to: origin, offset: wire.slots(at),
                          notify: i == b - 1 ? m + me : nil)
            }
        }
        plan.writeLocal(x, o: o)
        for j in 0..<m where j != me {
            let values = b * plan.shardRows.count * plan.headWidth(j), slots = wire.slots(values)
            try context.wait("torus outputs of node \(j)", posted: nil, bytes: 4 * slots) {
                try w.waitNotify(m + j, reaching: call + 1, from: j, floats: slots)
            }
            let arrived = w.memory.block(wire.slots(layout.backOffset(node: me, from: j)), [slots])
            plan.writeShard(x, fromNode: j, block: wire.decode(arrived, blocks: [values]))
        }
    }
}

/// Where everything lies in every node's torus window: Z [batch, total, 3·width(t)] as
/// `TorusPlan` lays it out for node t, then the outputs returned by each other node j in node
/// order, [batch, t's rows, width(j)] each. Offsets and sizes count values; `wire` says what a
/// value takes in the window.
struct TorusWindowLayout {
    let plan: TorusPlan
    let batch: Int
    let wire: WireFormat

    func zFloats(_ t: Int) -> Int { batch * plan.total * 3 * plan.headWidth(t) }

    func size(_ t: Int) -> Int {
        zFloats(t) + batch * plan.shardCounts[t] * (0..<plan.m).filter { $0 != t }.reduce(0) { $0 + plan.headWidth($1) }
    }

    /// Sample i of block s in node t's Z: the rows of node t − s, after t's text and own rows and
    /// the blocks of rounds 1..<s.
    func zOffset(node t: Int, block s: Int, sample i: Int) -> Int {
        let m = plan.m
        let start = plan.textRows.count + plan.shardCounts[t] + (1..<max(s, 1)).reduce(0) { $0 + plan.shardCounts[(t - $1 + m) % m] }
        return (i * plan.total + start) * 3 * plan.headWidth(t)
    }

    /// Where node j's outputs for node t's rows start in t's window.
    func backOffset(node t: Int, from j: Int) -> Int {
        zFloats(t) + batch * plan.shardCounts[t] * (0..<j).filter { $0 != t }.reduce(0) { $0 + plan.headWidth($1) }
    }
}
