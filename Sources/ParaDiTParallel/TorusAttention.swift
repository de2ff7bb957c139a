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
/// Same operands as `RingAttention`: q, k, v [batch, rows, heads, headDim] with strides; shardRows
/// the rows this rank owns (the rest are replicated text); shardCounts[r] the rows of column rank r.
struct TorusAttention {
    let comm: Communicator
    let context: ParallelContext

    func callAsFunction(batch b: Int, heads: Int, headDim d: Int, rows: Int,
                        q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int, v: UnsafePointer<Float>, ldv: Int,
                        shardRows: Range<Int>, shardCounts: [Int],
                        out: UnsafeMutablePointer<Float>, ldo: Int, scale: Float) throws {
        if context.plan.oneSided {
            return try OneSidedTorusAttention(comm: comm, context: context)(
                batch: b, heads: heads, headDim: d, rows: rows, q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv,
                shardRows: shardRows, shardCounts: shardCounts, out: out, ldo: ldo, scale: scale)
        }
        let plan = TorusPlan(m: comm.size, me: comm.rank, heads: heads, headDim: d, rows: rows, shardRows: shardRows, shardCounts: shardCounts)
        let z = Tensor(uninitialized: [b * plan.total * 3 * plan.width])
        plan.fillLocal(batch: b, q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv, into: z.data)
        let o = Tensor(uninitialized: [b * plan.total * plan.width])
        let lse = (0..<plan.m).map { Tensor(uninitialized: [b * plan.myHeads * plan.blockRows($0)]) }
        try withExtendedLifetime((z, o, lse)) {
            var pending: (CommRequest, CommRequest, Tensor, Tensor, Double?)?
            for s in 0..<plan.m {
                if let (recv, send, buffer, _, posted) = pending {
                    try context.wait(recv, "torus block of node \(plan.origin(s))", posted: posted, bytes: 4 * buffer.count)
                    plan.place(block: s, batch: b, from: buffer.data, into: z.data)
                    try send.wait()
                }
                pending = s + 1 < plan.m ? try post(round: s + 1, plan: plan, batch: b, q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv) : nil
                context.span("torus attention round \(s)") {
                    plan.attendRound(s, batch: b, scale: scale, z: z.data, o: o.data, lse: lse.map(\.data))
                }
            }
            try sendBack(plan: plan, batch: b, o: o.data, out: out, ldo: ldo)
        }
    }

    /// Posts round s: receive node (me − s)'s rows for my heads, send mine for node (me + s)'s heads.
    func post(round s: Int, plan: TorusPlan, batch b: Int, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
              v: UnsafePointer<Float>, ldv: Int) throws -> (CommRequest, CommRequest, Tensor, Tensor, Double?) {
        let from = plan.origin(s), to = (plan.me + s) % plan.m
        let incoming = Tensor(uninitialized: [b * plan.shardCounts[from] * 3 * plan.width])
        let outgoing = plan.pack(batch: b, forNode: to, q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv)
        let posted = context.tracer?.now()
        let recv = comm.irecv(incoming.data, count: incoming.count, from: from, tag: MessageTag.torusRound)
        let send = try comm.isend(outgoing.data, count: outgoing.count, to: to, tag: MessageTag.torusRound)
        return (recv, send, incoming, outgoing, posted)
    }

    /// Returns every received block's output to its node and assembles this rank's rows, all heads.
    func sendBack(plan: TorusPlan, batch b: Int, o: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, ldo: Int) throws {
        let (m, me, n) = (plan.m, plan.me, plan.shardRows.count)
        let incoming = (0..<m).map { j in Tensor(uninitialized: [j == me ? 0 : b * n * plan.headWidth(j)]) }
        var requests: [CommRequest] = []
        for j in 0..<m where j != me { requests.append(comm.irecv(incoming[j].data, count: incoming[j].count, from: j, tag: MessageTag.torusReturn)) }
        var outgoing: [Tensor] = []
        for s in 1..<max(m, 1) {
            let block = plan.packOutput(block: s, batch: b, o: o)
            outgoing.append(block)
            requests.append(try comm.isend(block.data, count: block.count, to: plan.origin(s), tag: MessageTag.torusReturn))
        }
        // The local block: replicated text (all-gathered below) and this rank's rows for my heads.
        plan.writeLocal(batch: b, o: o, out: out, ldo: ldo)
        try context.span("torus outputs back") { for r in requests { try r.wait() } }
        for j in 0..<m where j != me { plan.writeShard(batch: b, fromNode: j, block: incoming[j].data, out: out, ldo: ldo) }
        withExtendedLifetime((incoming, outgoing)) {}
        try gatherText(plan: plan, batch: b, o: o, out: out, ldo: ldo)
    }

    /// All-gathers the replicated text rows' output heads (none when the text is split).
    func gatherText(plan: TorusPlan, batch b: Int, o: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, ldo: Int) throws {
        let m = plan.m
        guard plan.textRows.count > 0 else { return }
        let mine = plan.packText(batch: b, o: o)
        let counts = (0..<m).map { b * plan.textRows.count * plan.headWidth($0) }
        let all = Tensor(uninitialized: [counts.reduce(0, +)])
        try withExtendedLifetime(mine) { try comm.allGather(mine.data, count: mine.count, into: all.data, counts: counts) }
        plan.writeText(batch: b, all: all.data, counts: counts, out: out, ldo: ldo)
        withExtendedLifetime(all) {}
    }
}
