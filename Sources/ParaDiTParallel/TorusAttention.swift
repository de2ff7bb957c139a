import ParaDiTDistributed
import ParaDiTTensor

/// Torus attention across nodes (StreamFusion's idea, ParaDiT's schedule): the inter-node stage
/// is an all-to-all over heads — like Ulysses, so each K/V row crosses the slow links once rather
/// than M−1 times as in Ring — decomposed into M−1 shifted pairwise rounds: in round s node n
/// sends its rows' q, k, v for node n+s's heads and receives node n−s's rows for its own heads.
/// The next round is posted before attention runs on the rows already present, and each new block
/// is merged both ways through the log-sum-exp (its queries against every present key, the earlier
/// queries against its keys), so the exchange hides behind compute and the result is exact.
/// The outputs then go back in one more exchange; replicated text rows stay local (their keys
/// count once, in the local block) and their output heads are all-gathered.
///
/// Same operands as `RingAttention`: shardRows the rows this rank owns (the rest are replicated
/// text); shardCounts[r] the rows of column rank r.
struct TorusAttention {
    let comm: Communicator
    let context: ParallelContext

    func callAsFunction(_ x: AttentionOperands, shardRows: Range<Int>, shardCounts: [Int], scale: Float) throws {
        if context.plan.oneSided {
            return try OneSidedTorusAttention(comm: comm, context: context)(x, shardRows: shardRows, shardCounts: shardCounts, scale: scale)
        }
        let b = x.batch, wire = x.wire
        let plan = TorusPlan(m: comm.size, me: comm.rank, heads: x.heads, headDim: x.headDim, rows: x.rows, shardRows: shardRows,
                             shardCounts: shardCounts)
        let z = Tensor(uninitialized: [b, plan.total, 3 * plan.width])
        plan.fillLocal(x, into: z)
        let o = Tensor(uninitialized: [b, plan.total, plan.width])
        let lse = (0..<plan.m).map { Tensor(uninitialized: [b * plan.myHeads * plan.blockRows($0)]) }
        var pending: (recv: CommRequest, send: CommRequest, incoming: Tensor, posted: Double?)?
        for s in 0..<plan.m {
            if let (recv, send, incoming, posted) = pending {
                try context.wait(recv, "torus block of node \(plan.origin(s))", posted: posted, bytes: 4 * incoming.count)
                plan.place(block: s, batch: b,
                           from: wire.decode(incoming, blocks: [b * plan.blockRows(s) * 3 * plan.width]), into: z)
                try send.wait()
            }
            pending = s + 1 < plan.m ? try post(round: s + 1, plan: plan, x) : nil
            context.span("torus attention round \(s)") {
                plan.attendRound(s, batch: b, scale: scale, precision: x.precision, z: z, o: o, lse: lse)
            }
        }
        try sendBack(plan: plan, x, o: o)
    }

    /// Posts round s: receive node (me − s)'s rows for my heads, send mine for node (me + s)'s heads.
    func post(round s: Int, plan: TorusPlan, _ x: AttentionOperands) throws -> (CommRequest, CommRequest, Tensor, Double?) {
        let from = plan.origin(s), to = (plan.me + s) % plan.m
        let incoming = x.wire.buffer([x.batch * plan.shardCounts[from] * 3 * plan.width])
        let posted = context.tracer?.now()
        let recv = comm.irecv(into: incoming, from: from, tag: MessageTag.torusRound)
        let send = try comm.isend(x.wire.encode(plan.pack(x, forNode: to)), to: to, tag: MessageTag.torusRound)
        return (recv, send, incoming, posted)
    }

    /// Returns every received block's output to its node and assembles this rank's rows, all heads.
    func sendBack(plan: TorusPlan, _ x: AttentionOperands, o: Tensor) throws {
        let (m, me, n, wire) = (plan.m, plan.me, plan.shardRows.count, x.wire)
        let values = (0..<m).map { j in j == me ? 0 : x.batch * n * plan.headWidth(j) }
        let incoming = values.map { wire.buffer([$0]) }
        var requests: [CommRequest] = []
        for j in 0..<m where j != me { requests.append(comm.irecv(into: incoming[j], from: j, tag: MessageTag.torusReturn)) }
        for s in 1..<max(m, 1) {
            requests.append(try comm.isend(wire.encode(plan.packOutput(block: s, o: o)), to: plan.origin(s),
                                           tag: MessageTag.torusReturn))
        }
        // The local block: replicated text (all-gathered below) and this rank's rows for my heads.
        plan.writeLocal(x, o: o)
        try context.span("torus outputs back") { for r in requests { try r.wait() } }
        for j in 0..<m where j != me {
            plan.writeShard(x, fromNode: j, block: wire.decode(incoming[j], blocks: [values[j]]))
        }
        try gatherText(plan: plan, x, o: o)
    }

    /// All-gathers the replicated text rows' output heads (none when the text is split).
    func gatherText(plan: TorusPlan, _ x: AttentionOperands, o: Tensor) throws {
        guard plan.textRows.count > 0 else { return }
        let counts = (0..<plan.m).map { x.batch * plan.textRows.count * plan.headWidth($0) }
        let all = try x.wire.allGather(sliceSequence(o, 0..<plan.textRows.count), counts: counts, over: comm)
        plan.writeText(x, all: all, counts: counts)
    }
}
