import ParaDiTDistributed
import ParaDiTTensor

/// Ring attention over the ranks of `comm`: every local query row attends to the keys of all
/// ranks. Step 0 uses the local keys (every row, including replicated text); step s the K/V shard
/// of the rank s places back along the ring. The receive of the next shard and the send of the
/// current one are posted before the current one is computed (two buffers), so the transfer runs
/// under the attention; the partial results merge exactly through their log-sum-exp.
///
/// x: the call's q, k, v and out (`batch` samples of the same rows); shardRows: the local rows
/// passed on (the others are replicated text, counted once); shardCounts[r]: ring rank r's rows.
struct RingAttention {
    let comm: Communicator
    let context: ParallelContext

    func callAsFunction(_ x: AttentionOperands, shardRows: Range<Int>, shardCounts: [Int], scale: Float) throws {
        if context.plan.oneSided {
            return try OneSidedRingAttention(comm: comm, context: context)(x, shardRows: shardRows, shardCounts: shardCounts, scale: scale)
        }
        let (n, me, b, width) = (comm.size, comm.rank, x.batch, x.width)
        check(shardCounts[me] == shardRows.count, "ring shard of \(shardRows.count) rows, plan says \(shardCounts[me])")
        let next = (me + 1) % n, prev = (me + n - 1) % n
        // Values of each ring rank's K|V shard [b, shard, 2·width]; two buffers of the largest as sent
        // (`WireFormat`); the LSEs and one partial output.
        let values = shardCounts.map { b * $0 * 2 * width }, wire = x.wire
        let buffers = [wire.buffer([values.max()!]), wire.buffer([values.max()!])]
        let lse = Tensor(uninitialized: [b * x.heads * x.rows]), partLse = Tensor(uninitialized: [b * x.heads * x.rows])
        let part = Tensor(uninitialized: [b * x.rows, width])
        let own = wire.precision == .f32 ? buffers[0] : Tensor(uninitialized: [values[me]])
        for i in 0..<b {
            x.packKV(i, rows: shardRows,
                     into: own.block(i * shardRows.count * 2 * width, [shardRows.count, 2 * width]).allColumns)
        }
        if wire.precision != .f32 { packBFloat16(own, into: buffers[0]) }
        var sending: CommRequest?, receiving: CommRequest?, posted: Double?
        for step in 0..<n {
            let origin = (me + n - step) % n
            let current = buffers[step % 2].block(0, [wire.slots(values[origin])])
            if let r = receiving { try context.wait(r, "K/V shard of ring rank \(origin)", posted: posted, bytes: 4 * current.count) }
            try sending?.wait()
            if step + 1 < n {
                let incoming = buffers[(step + 1) % 2].block(0, [wire.slots(values[(me + n - step - 1) % n])])
                posted = context.tracer?.now()
                receiving = comm.irecv(into: incoming, from: prev, tag: MessageTag.ringKV)
                sending = try comm.isend(current, to: next, tag: MessageTag.ringKV)
            } else {
                (receiving, sending) = (nil, nil)
            }
            let keys = step == 0 ? current : wire.decode(current, blocks: [values[origin]]).reshaped([-1, 2 * width])
            context.span("ring attention step \(step)") {
                attend(x, step: step, keys: keys, part: part, lse: lse, partLse: partLse, scale: scale)
            }
        }
    }
}

/// Step `step` of a ring: the local keys at step 0 (into out and lse), otherwise the shard
/// `keys` [b·shard, 2·width] (K | V) into a partial result merged into out.
func attend(_ x: AttentionOperands, step: Int, keys: Tensor, part: Tensor, lse: Tensor, partLse: Tensor, scale: Float) {
    if step == 0 {
        attention(batch: x.batch, heads: x.heads, headDim: x.headDim, q: x.q, k: x.k, v: x.v, out: x.out, lse: lse,
                  scale: scale, precision: x.precision)
        return
    }
    let w = x.width
    attention(batch: x.batch, heads: x.heads, headDim: x.headDim, q: x.q, k: keys.columns(0..<w), v: keys.columns(w..<(2 * w)),
              out: part.allColumns, lse: partLse, scale: scale, precision: x.precision)
    attentionMerge(batch: x.batch, heads: x.heads, headDim: x.headDim, out: x.out, lse: lse, part: part.allColumns, partLse: partLse)
}
