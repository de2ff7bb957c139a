import ParaDiTTensor

/// The geometry of one torus attention call on one rank: heads split over the M nodes, and the
/// working buffer Z [batch, total, 3·width] (q | k | v of this rank's heads) whose rows are the
/// blocks in arrival order — block 0 the replicated text and this rank's own rows, block s the rows
/// of node me − s — so the keys present after round s are always a prefix of Z.
struct TorusPlan {
    let m: Int, me: Int
    let headDim: Int
    let heads: [Range<Int>]
    let rows: Int
    let shardRows: Range<Int>, textRows: Range<Int>
    let shardCounts: [Int]
    let starts: [Int]
    let total: Int

    init(m: Int, me: Int, heads: Int, headDim: Int, rows: Int, shardRows: Range<Int>, shardCounts: [Int]) {
        (self.m, self.me, self.headDim, self.rows, self.shardRows, self.shardCounts) = (m, me, headDim, rows, shardRows, shardCounts)
        self.heads = balancedSplit(heads, parts: m)
        textRows = shardRows.lowerBound == 0 ? shardRows.upperBound..<rows : 0..<shardRows.lowerBound
        var starts: [Int] = [], at = 0
        for s in 0..<m {
            starts.append(at)
            at += s == 0 ? textRows.count + shardRows.count : shardCounts[(me - s + m) % m]
        }
        (self.starts, total) = (starts, at)
    }

    var myHeads: Int { heads[me].count }
    var width: Int { myHeads * headDim }
    func headWidth(_ node: Int) -> Int { heads[node].count * headDim }
    /// The node whose rows arrive in round s.
    func origin(_ s: Int) -> Int { (me - s + m) % m }
    func blockRows(_ s: Int) -> Int { (s + 1 < m ? starts[s + 1] : total) - starts[s] }

    /// The columns of node j's heads in a row of all heads.
    func columns(_ j: Int) -> Range<Int> { (heads[j].lowerBound * headDim)..<(heads[j].upperBound * headDim) }

    /// q | k | v of sample i's rows `range`, node j's heads, into a [rows, 3·headWidth(j)] view.
    func packQKV(_ x: AttentionOperands, sample i: Int, rows range: Range<Int>, node j: Int, into dst: StridedView) {
        let hw = headWidth(j)
        for (n, operand) in [x.q, x.k, x.v].enumerated() {
            copy(x.sample(operand, i, rows: range, columns: columns(j)), into: dst.columns((n * hw)..<((n + 1) * hw)))
        }
    }

    /// Block 0 of Z [batch, total, 3·width]: the text rows, then this rank's rows, for this rank's heads.
    func fillLocal(_ x: AttentionOperands, into z: Tensor) {
        for i in 0..<x.batch {
            var at = 0
            for range in [textRows, shardRows] {
                packQKV(x, sample: i, rows: range, node: me, into: z[i].rows(at..<(at + range.count)).allColumns)
                at += range.count
            }
        }
    }

    /// This rank's rows for node j's heads: [batch, own rows, 3·headWidth(j)].
    func pack(_ x: AttentionOperands, forNode j: Int) -> Tensor {
        let out = Tensor(uninitialized: [x.batch, shardRows.count, 3 * headWidth(j)])
        for i in 0..<x.batch { packQKV(x, sample: i, rows: shardRows, node: j, into: out[i].allColumns) }
        return out
    }

    /// A received block [batch, rows, 3·width] into its rows of Z.
    func place(block s: Int, batch b: Int, from buffer: Tensor, into z: Tensor) {
        copySequence(buffer.reshaped([b, blockRows(s), 3 * width]), into: z, at: starts[s])
    }

    /// Round s: block s's queries against every key present, then every earlier block's queries
    /// against block s's keys, merged through the log-sum-exp. z: [batch, total, 3·width],
    /// o: [batch, total, width]; lse[s]: [batch, myHeads, blockRows(s)].
    func attendRound(_ s: Int, batch b: Int, scale: Float, precision: AttentionPrecision, z: Tensor, o: Tensor,
                     lse: [Tensor]) {
        let (w, h, d) = (width, myHeads, headDim)
        guard h > 0 else { return }
        let maxRows = (0..<s).map(blockRows).max() ?? 0
        let part = Tensor(uninitialized: [max(maxRows * w, 1)]), partLse = Tensor(uninitialized: [max(maxRows * h, 1)])
        let (start, n) = (starts[s], blockRows(s))
        for i in 0..<b {
            let rows = z[i].reshaped([total, 3 * w])
            func q(_ r: Range<Int>) -> StridedView { rows.rows(r).columns(0..<w) }
            func k(_ r: Range<Int>) -> StridedView { rows.rows(r).columns(w..<(2 * w)) }
            func v(_ r: Range<Int>) -> StridedView { rows.rows(r).columns((2 * w)..<(3 * w)) }
            let block = start..<(start + n)
            attention(batch: 1, heads: h, headDim: d, q: q(block), k: k(0..<(start + n)), v: v(0..<(start + n)),
                      out: o[i].rows(block).allColumns, lse: lse[s].block(i * h * n, [h * n]), scale: scale,
                      precision: precision)
            for a in 0..<s {
                let earlier = starts[a]..<(starts[a] + blockRows(a)), p = part.block(0, [earlier.count, w]).allColumns
                attention(batch: 1, heads: h, headDim: d, q: q(earlier), k: k(block), v: v(block), out: p, lse: partLse,
                          scale: scale, precision: precision)
                attentionMerge(batch: 1, heads: h, headDim: d, out: o[i].rows(earlier).allColumns,
                               lse: lse[a].block(i * h * earlier.count, [h * earlier.count]), part: p, partLse: partLse)
            }
        }
    }

    /// Block s's outputs [batch, rows, width], to go back to its node.
    func packOutput(block s: Int, o: Tensor) -> Tensor { sliceSequence(o, starts[s]..<(starts[s] + blockRows(s))) }

    /// This rank's own rows, its heads, from block 0 of the outputs o [batch, total, width].
    func writeLocal(_ x: AttentionOperands, o: Tensor) {
        let own = textRows.count..<(textRows.count + shardRows.count)
        for i in 0..<x.batch { copy(o[i].rows(own).allColumns, into: x.sample(x.out, i, rows: shardRows, columns: columns(me))) }
    }

    /// Node j's heads of this rank's rows from `block` [batch, own rows, headWidth(j)].
    func writeShard(_ x: AttentionOperands, fromNode j: Int, block: Tensor) {
        let (n, hw) = (shardRows.count, headWidth(j))
        for i in 0..<x.batch {
            copy(block.block(i * n * hw, [n, hw]).allColumns, into: x.sample(x.out, i, rows: shardRows, columns: columns(j)))
        }
    }

    /// Every node's text heads [node][batch][text rows][its width] into the text rows of the output.
    func writeText(_ x: AttentionOperands, all: Tensor, counts: [Int]) {
        var src = 0
        let t = textRows.count
        for j in 0..<m {
            let hw = headWidth(j)
            for i in 0..<x.batch {
                copy(all.block(src + i * t * hw, [t, hw]).allColumns, into: x.sample(x.out, i, rows: textRows, columns: columns(j)))
            }
            src += counts[j]
        }
    }
}
