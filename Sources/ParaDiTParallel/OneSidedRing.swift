import ParaDiTDistributed
import ParaDiTTensor

/// A notified window kept across attention calls, with what its protocol has counted so far.
/// Counters never reset, so each side names the total it expects: notifications consumed per
/// slot, puts made into each of the peer's regions, and completed calls.
final class OneSidedChannel {
    let window: NotifiedWindow
    var seen: [Int]
    var sent: [Int]
    var calls = 0

    init(window: NotifiedWindow) {
        self.window = window
        seen = Array(repeating: 0, count: window.slots)
        sent = Array(repeating: 0, count: window.slots)
    }
}

/// Ring attention with one-sided transfers (`--one-sided`): the schedule of `RingAttention`, but
/// each rank writes the K/V shard it passes on straight into its successor's window, and the
/// successor waits on a notification instead of a matching receive.
///
/// Every rank's window holds two regions of one shard each (double buffering). At step s a rank
/// computes on region s mod 2 (its own shard at step 0) while its predecessor writes the next
/// shard into the other one. Counters: 0 and 1 "region 0/1 holds a new shard", 2 and 3 "the
/// successor's region 0/1 is free again". A rank notifies its predecessor that a region is free
/// once it has computed on it and passed it on; the predecessor waits for that before writing the
/// region again. The counts carry over between calls (layers), so there is no collective point:
/// a rank may start the next layer's ring while its neighbours finish this one, and the one-shard
/// lead the two regions allow is all it can take.
struct OneSidedRingAttention {
    let comm: Communicator
    let context: ParallelContext

    func callAsFunction(_ x: AttentionOperands, shardRows: Range<Int>, shardCounts: [Int], scale: Float) throws {
        let (n, me, b, width) = (comm.size, comm.rank, x.batch, x.width)
        check(shardCounts[me] == shardRows.count, "ring shard of \(shardRows.count) rows, plan says \(shardCounts[me])")
        let prev = (me + n - 1) % n, wire = x.wire
        // Each region holds the largest shard as sent (`WireFormat`).
        let values = shardCounts.map { b * $0 * 2 * width }, region = wire.slots(values.max()!)
        let channel = try context.channel([0, region], comm: comm, count: 2 * region, slots: 4)
        let w = channel.window, memory = w.memory
        // This rank's K|V shard [b, shard, 2·width] as sent, the LSEs and one partial output.
        let packed = Tensor(uninitialized: [values[me]])
        let lse = Tensor(uninitialized: [b * x.heads * x.rows]), partLse = Tensor(uninitialized: [b * x.heads * x.rows])
        let part = Tensor(uninitialized: [b * x.rows, width])
        for i in 0..<b {
            x.packKV(i, rows: shardRows,
                     into: packed.block(i * shardRows.count * 2 * width, [shardRows.count, 2 * width]).allColumns)
        }
        let mine = wire.encode(packed)
        var posted: Double?
        for step in 0..<n {
            let origin = (me + n - step) % n, slot = step % 2, floats = wire.slots(values[origin])
            let current = step == 0 ? mine : memory.block(slot * region, [floats])
            if step > 0 {
                channel.seen[slot] += 1
                try context.wait("K/V shard of ring rank \(origin)", posted: posted, bytes: 4 * floats) {
                    try w.waitNotify(slot, reaching: channel.seen[slot], from: prev, floats: floats)
                }
            }
            if step + 1 < n {
                try pass(current, into: (step + 1) % 2, of: (me + 1) % n, regionSize: region, channel: channel)
                posted = context.tracer?.now()
            }
            let keys = step == 0 ? current : wire.decode(current, blocks: [values[origin]]).reshaped([-1, 2 * width])
            context.span("ring attention step \(step)") {
                attend(x, step: step, keys: keys, part: part, lse: lse, partLse: partLse, scale: scale)
            }
            // Computed on and passed on: the predecessor may write this region again.
            if step > 0 { try w.notify(prev, slot: 2 + slot) }
        }
    }

    /// Writes a shard into region `target` of the successor once it is free there, and notifies.
    func pass(_ shard: Tensor, into target: Int, of next: Int, regionSize: Int, channel: OneSidedChannel) throws {
        let w = channel.window
        try context.wait("ring region \(target) of rank \(next) free", posted: nil, bytes: 0) {
            try w.waitNotify(2 + target, reaching: channel.sent[target], from: next, floats: 0)
        }
        try w.put(shard, to: next, offset: target * regionSize, notify: target)
        channel.sent[target] += 1
    }
}
