import ParaDiTDistributed
import ParaDiTTensor

/// Ring attention over the ranks of `comm`: every local query row attends to the keys of all
/// ranks. Step 0 uses the local keys (every row, including replicated text); step s the K/V shard
/// of the rank s places back along the ring. The receive of the next shard and the send of the
/// current one are posted before the current one is computed (two buffers), so the transfer runs
/// under the attention; the partial results merge exactly through their log-sum-exp.
///
/// q, k, v: [batch, rows, heads, headDim] with row strides; shardRows: the local rows passed on
/// (the others are replicated text, counted once); shardCounts[r]: ring rank r's shard rows.
/// out: [batch, rows, heads, headDim] with stride ldo.
struct RingAttention {
    let comm: Communicator
    let context: ParallelContext

    func callAsFunction(batch b: Int, heads: Int, headDim d: Int, rows: Int,
                        q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int, v: UnsafePointer<Float>, ldv: Int,
                        shardRows: Range<Int>, shardCounts: [Int],
                        out: UnsafeMutablePointer<Float>, ldo: Int, scale: Float) throws {
        if context.plan.oneSided {
            return try OneSidedRingAttention(comm: comm, context: context)(
                batch: b, heads: heads, headDim: d, rows: rows, q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv,
                shardRows: shardRows, shardCounts: shardCounts, out: out, ldo: ldo, scale: scale)
        }
        let (n, me, width) = (comm.size, comm.rank, heads * d)
        check(shardCounts[me] == shardRows.count, "ring shard of \(shardRows.count) rows, plan says \(shardCounts[me])")
        let next = (me + 1) % n, prev = (me + n - 1) % n
        let maxShard = shardCounts.max()!
        // Two K|V buffers [b, shard, 2·width]; the LSEs and one partial output.
        let buffers = [Tensor(uninitialized: [b * maxShard * 2 * width]), Tensor(uninitialized: [b * maxShard * 2 * width])]
        let lse = Tensor(uninitialized: [b * heads * rows]), partLse = Tensor(uninitialized: [b * heads * rows])
        let part = Tensor(uninitialized: [b * rows * width])
        try withExtendedLifetime((buffers, lse, partLse, part)) {
            for i in 0..<b {
                let src = (i * rows + shardRows.lowerBound)
                let dst = buffers[0].data + i * shardRows.count * 2 * width
                copy2D(rows: shardRows.count, cols: width, src: k + src * ldk, lds: ldk, dst: dst, ldd: 2 * width)
                copy2D(rows: shardRows.count, cols: width, src: v + src * ldv, lds: ldv, dst: dst + width, ldd: 2 * width)
            }
            var sending: CommRequest?, receiving: CommRequest?, posted: Double?, receivedCount = 0
            for step in 0..<n {
                let current = buffers[step % 2].data, origin = (me + n - step) % n
                if let r = receiving { try context.wait(r, "K/V shard of ring rank \(origin)", posted: posted, bytes: 4 * receivedCount) }
                try sending?.wait()
                if step + 1 < n {
                    receivedCount = b * shardCounts[(me + n - step - 1) % n] * 2 * width
                    posted = context.tracer?.now()
                    receiving = comm.irecv(buffers[(step + 1) % 2].data, count: receivedCount, from: prev, tag: MessageTag.ringKV)
                    sending = try comm.isend(current, count: b * shardCounts[origin] * 2 * width, to: next, tag: MessageTag.ringKV)
                } else {
                    (receiving, sending) = (nil, nil)
                }
                context.span("ring attention step \(step)") {
                    if step == 0 {
                        attention(batch: b, heads: heads, lq: rows, lk: rows, headDim: d, q: q, ldq: ldq, k: k, ldk: ldk,
                                  v: v, ldv: ldv, out: out, ldo: ldo, lse: lse.data, scale: scale)
                        return
                    }
                    let lk = shardCounts[origin]
                    attention(batch: b, heads: heads, lq: rows, lk: lk, headDim: d, q: q, ldq: ldq, k: current, ldk: 2 * width,
                              v: current + width, ldv: 2 * width, out: part.data, ldo: width, lse: partLse.data, scale: scale)
                    attentionMerge(batch: b, heads: heads, lq: rows, headDim: d, out: out, ldo: ldo, lse: lse.data,
                                   part: part.data, ldp: width, partLse: partLse.data)
                }
            }
        }
    }
}
