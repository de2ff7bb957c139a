import ParaDiTDistributed
import ParaDiTModels
import ParaDiTTensor

/// The two all-to-alls of Ulysses for one attention call, over the ulysses group.
/// Forward: this rank's shard rows × every head of q, k, v → the group's shard rows × this rank's
/// heads, one collective for all three. Back: the output the other way. Replicated text rows are
/// sliced by heads locally and their output heads all-gathered.
struct UlyssesExchange {
    let comm: Communicator
    let context: ParallelContext
    let call: AttentionCall
    let replicated: Range<Int>, shardRows: Range<Int>
    /// Heads of each ulysses rank.
    let heads: [Range<Int>]
    /// Shard rows of each ulysses rank.
    let peerCounts: [Int]

    var myHeads: Range<Int> { heads[comm.rank] }
    /// Floats of one row of one of q, k, v (or the output) for this rank's heads.
    var width: Int { myHeads.count * call.headDim }
    /// Rows after the exchange: replicated text, then every peer's shard in rank order.
    var rows: Int { replicated.count + peerCounts.reduce(0, +) }
    func headWidth(_ u: Int) -> Int { heads[u].count * call.headDim }

    /// [batch, rows, 3·width]: q | k | v of this rank's heads for every row of the group.
    func scatterHeads() throws -> Tensor {
        let (b, n, d, lq, u) = (call.batch, shardRows.count, call.headDim, call.queryTokens, comm.size)
        let sendCounts = (0..<u).map { b * n * 3 * headWidth($0) }
        let recvCounts = peerCounts.map { b * $0 * 3 * width }
        let send = Tensor(uninitialized: [sendCounts.reduce(0, +)])
        var offset = 0
        for peer in 0..<u {
            let hw = headWidth(peer), col = heads[peer].lowerBound * d
            for i in 0..<b {
                let dst = send.data + offset + i * n * 3 * hw, row = i * lq + shardRows.lowerBound
                copy2D(rows: n, cols: hw, src: call.q.data + row * call.ldq + col, lds: call.ldq, dst: dst, ldd: 3 * hw)
                copy2D(rows: n, cols: hw, src: call.k.data + row * call.ldk + col, lds: call.ldk, dst: dst + hw, ldd: 3 * hw)
                copy2D(rows: n, cols: hw, src: call.v.data + row * call.ldv + col, lds: call.ldv, dst: dst + 2 * hw, ldd: 3 * hw)
            }
            offset += sendCounts[peer]
        }
        // One sample and no replicated rows: the received blocks already are [rows, 3·width].
        let direct = b == 1 && replicated.isEmpty
        let recv = Tensor(uninitialized: [recvCounts.reduce(0, +)])
        try withExtendedLifetime(send) {
            try comm.allToAll(send.data, sendCounts: sendCounts, into: recv.data, recvCounts: recvCounts)
        }
        if direct { return recv }
        let joint = Tensor(uninitialized: [b * rows * 3 * width])
        let t = replicated.count, col = myHeads.lowerBound * d
        for i in 0..<b {
            let dst = joint.data + i * rows * 3 * width, row = i * lq + replicated.lowerBound
            copy2D(rows: t, cols: width, src: call.q.data + row * call.ldq + col, lds: call.ldq, dst: dst, ldd: 3 * width)
            copy2D(rows: t, cols: width, src: call.k.data + row * call.ldk + col, lds: call.ldk, dst: dst + width, ldd: 3 * width)
            copy2D(rows: t, cols: width, src: call.v.data + row * call.ldv + col, lds: call.ldv, dst: dst + 2 * width, ldd: 3 * width)
        }
        var src = 0, at = t
        for peer in 0..<u {
            let count = peerCounts[peer] * 3 * width
            for i in 0..<b {
                (joint.data + (i * rows + at) * 3 * width).update(from: recv.data + src + i * count, count: count)
            }
            src += b * count
            at += peerCounts[peer]
        }
        withExtendedLifetime(recv) {}
        return joint
    }

    /// Writes out [batch, rows, width] (this rank's heads) into the call's output, all heads.
    func gatherHeads(_ out: Tensor) throws {
        let (b, n, u) = (call.batch, shardRows.count, comm.size)
        let sendCounts = peerCounts.map { b * $0 * width }
        let recvCounts = (0..<u).map { b * n * headWidth($0) }
        let t = replicated.count
        var send = out
        if !(b == 1 && t == 0) {
            send = Tensor(uninitialized: [sendCounts.reduce(0, +)])
            var dst = 0, at = t
            for peer in 0..<u {
                let count = peerCounts[peer] * width
                for i in 0..<b { (send.data + dst + i * count).update(from: out.data + (i * rows + at) * width, count: count) }
                dst += b * count
                at += peerCounts[peer]
            }
        }
        let recv = Tensor(uninitialized: [recvCounts.reduce(0, +)])
        try withExtendedLifetime((send, out)) {
            try comm.allToAll(send.data, sendCounts: sendCounts, into: recv.data, recvCounts: recvCounts)
        }
        scatter(recv, rows: shardRows, counts: recvCounts)
        guard t > 0 else { return }
        // Replicated text: every rank computed its heads for all text rows; gather the others.
        let mine = Tensor(uninitialized: [b * t * width])
        for i in 0..<b { mine.data.advanced(by: i * t * width).update(from: out.data + i * rows * width, count: t * width) }
        let textCounts = (0..<u).map { b * t * headWidth($0) }
        let all = Tensor(uninitialized: [textCounts.reduce(0, +)])
        try withExtendedLifetime(mine) {
            try comm.allGather(mine.data, count: mine.count, into: all.data, counts: textCounts)
        }
        scatter(all, rows: replicated, counts: textCounts)
    }

    /// Blocks [peer][batch][rows.count][peer's head width] → the call's output rows, head columns.
    func scatter(_ blocks: Tensor, rows target: Range<Int>, counts: [Int]) {
        let (b, n, d) = (call.batch, target.count, call.headDim)
        var src = 0
        for peer in 0..<comm.size {
            let hw = headWidth(peer)
            for i in 0..<b {
                copy2D(rows: n, cols: hw, src: blocks.data + src + i * n * hw, lds: hw,
                       dst: call.out.data + (i * call.queryTokens + target.lowerBound) * call.ldo + heads[peer].lowerBound * d, ldd: call.ldo)
            }
            src += counts[peer]
        }
        withExtendedLifetime(blocks) {}
    }
}
