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
    var wire: WireFormat { WireFormat(call.precision) }
    /// Floats of one row of one of q, k, v (or the output) for this rank's heads.
    var width: Int { myHeads.count * call.headDim }
    /// Rows after the exchange: replicated text, then every peer's shard in rank order.
    var rows: Int { replicated.count + peerCounts.reduce(0, +) }
    func headWidth(_ u: Int) -> Int { heads[u].count * call.headDim }

    /// Rows `range` of sample i of a call operand, columns of `heads`.
    func operand(_ x: StridedView, sample i: Int, rows range: Range<Int>, heads h: Range<Int>) -> StridedView {
        let (lq, d) = (call.queryTokens, call.headDim)
        return x.rows((i * lq + range.lowerBound)..<(i * lq + range.upperBound)).columns((h.lowerBound * d)..<(h.upperBound * d))
    }

    /// q | k | v of sample i's `range` rows for `heads` into a [rows, 3·width] view.
    func packQKV(sample i: Int, rows range: Range<Int>, heads h: Range<Int>, into dst: StridedView) {
        let hw = h.count * call.headDim
        for (j, x) in [call.q, call.k, call.v].enumerated() {
            copy(operand(x, sample: i, rows: range, heads: h), into: dst.columns((j * hw)..<((j + 1) * hw)))
        }
    }

    /// [batch, rows, 3·width]: q | k | v of this rank's heads for every row of the group.
    func scatterHeads() throws -> Tensor {
        let (b, n, u) = (call.batch, shardRows.count, comm.size)
        let sendCounts = (0..<u).map { b * n * 3 * headWidth($0) }
        let recvCounts = peerCounts.map { b * $0 * 3 * width }
        let send = Tensor(uninitialized: [sendCounts.reduce(0, +)])
        var offset = 0
        for peer in 0..<u {
            let hw = headWidth(peer)
            for i in 0..<b {
                packQKV(sample: i, rows: shardRows, heads: heads[peer], into: send.block(offset + i * n * 3 * hw, [n, 3 * hw]).allColumns)
            }
            offset += sendCounts[peer]
        }
        // One sample and no replicated rows: the received blocks already are [rows, 3·width].
        let recv = try wire.allToAll(send, sendCounts: sendCounts, recvCounts: recvCounts, over: comm)
        if b == 1 && replicated.isEmpty { return recv }
        let joint = Tensor(uninitialized: [b, rows, 3 * width])
        let t = replicated.count
        for i in 0..<b { packQKV(sample: i, rows: replicated, heads: myHeads, into: joint[i].rows(0..<t).allColumns) }
        var src = 0, at = t
        for peer in 0..<u {
            let n = peerCounts[peer]
            copySequence(recv.block(src, [b, n, 3 * width]), into: joint, at: at)
            src += b * n * 3 * width
            at += n
        }
        return joint
    }

    /// Writes out [batch, rows, width] (this rank's heads) into the call's output, all heads.
    func gatherHeads(_ out: Tensor) throws {
        let (b, n, u) = (call.batch, shardRows.count, comm.size)
        let sendCounts = peerCounts.map { b * $0 * width }
        let recvCounts = (0..<u).map { b * n * headWidth($0) }
        let t = replicated.count, x = out.reshaped([b, rows, width])
        var send = out
        if !(b == 1 && t == 0) {
            send = Tensor(uninitialized: [sendCounts.reduce(0, +)])
            var dst = 0, at = t
            for peer in 0..<u {
                let count = peerCounts[peer]
                for i in 0..<b {
                    copy(x[i].rows(at..<(at + count)).allColumns, into: send.block(dst + i * count * width, [count, width]).allColumns)
                }
                dst += b * count * width
                at += count
            }
        }
        let recv = try wire.allToAll(send, sendCounts: sendCounts, recvCounts: recvCounts, over: comm)
        scatter(recv, rows: shardRows, counts: recvCounts)
        guard t > 0 else { return }
        // Replicated text: every rank computed its heads for all text rows; gather the others.
        let mine = sliceSequence(x, 0..<t)
        let textCounts = (0..<u).map { b * t * headWidth($0) }
        scatter(try wire.allGather(mine, counts: textCounts, over: comm), rows: replicated, counts: textCounts)
    }

    /// Blocks [peer][batch][rows.count][peer's head width] → the call's output rows, head columns.
    func scatter(_ blocks: Tensor, rows target: Range<Int>, counts: [Int]) {
        let (b, n) = (call.batch, target.count)
        var src = 0
        for peer in 0..<comm.size {
            let hw = headWidth(peer)
            for i in 0..<b {
                copy(blocks.block(src + i * n * hw, [n, hw]).allColumns, into: operand(call.out, sample: i, rows: target, heads: heads[peer]))
            }
            src += counts[peer]
        }
    }
}
