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

    /// Block 0 of Z: the text rows, then this rank's rows, for this rank's heads.
    func fillLocal(batch b: Int, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                   v: UnsafePointer<Float>, ldv: Int, into z: UnsafeMutablePointer<Float>) {
        let (w, col) = (width, heads[me].lowerBound * headDim)
        for i in 0..<b {
            var at = z + i * total * 3 * w
            for range in [textRows, shardRows] {
                let row = i * rows + range.lowerBound
                copy2D(rows: range.count, cols: w, src: q + row * ldq + col, lds: ldq, dst: at, ldd: 3 * w)
                copy2D(rows: range.count, cols: w, src: k + row * ldk + col, lds: ldk, dst: at + w, ldd: 3 * w)
                copy2D(rows: range.count, cols: w, src: v + row * ldv + col, lds: ldv, dst: at + 2 * w, ldd: 3 * w)
                at += range.count * 3 * w
            }
        }
    }

    /// This rank's rows for node j's heads: [batch, own rows, 3·headWidth(j)].
    func pack(batch b: Int, forNode j: Int, q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
              v: UnsafePointer<Float>, ldv: Int) -> Tensor {
        let (n, hw, col) = (shardRows.count, headWidth(j), heads[j].lowerBound * headDim)
        let out = Tensor(uninitialized: [b * n * 3 * hw])
        for i in 0..<b {
            let dst = out.data + i * n * 3 * hw, row = i * rows + shardRows.lowerBound
            copy2D(rows: n, cols: hw, src: q + row * ldq + col, lds: ldq, dst: dst, ldd: 3 * hw)
            copy2D(rows: n, cols: hw, src: k + row * ldk + col, lds: ldk, dst: dst + hw, ldd: 3 * hw)
            copy2D(rows: n, cols: hw, src: v + row * ldv + col, lds: ldv, dst: dst + 2 * hw, ldd: 3 * hw)
        }
        return out
    }

    /// A received block [batch, rows, 3·width] into its rows of Z.
    func place(block s: Int, batch b: Int, from buffer: UnsafePointer<Float>, into z: UnsafeMutablePointer<Float>) {
        let count = blockRows(s) * 3 * width
        for i in 0..<b { (z + (i * total + starts[s]) * 3 * width).update(from: buffer + i * count, count: count) }
    }

    /// Round s: block s's queries against every key present, then every earlier block's queries
    /// against block s's keys, merged through the log-sum-exp. o: [batch, total, width];
    /// lse[s]: [batch, myHeads, blockRows(s)].
    func attendRound(_ s: Int, batch b: Int, scale: Float, z: UnsafeMutablePointer<Float>, o: UnsafeMutablePointer<Float>,
                     lse: [UnsafeMutablePointer<Float>]) {
        let (w, h, d) = (width, myHeads, headDim)
        guard h > 0 else { return }
        let maxRows = (0..<s).map(blockRows).max() ?? 0
        let part = Tensor(uninitialized: [max(maxRows * w, 1)]), partLse = Tensor(uninitialized: [max(maxRows * h, 1)])
        for i in 0..<b {
            let base = z + i * total * 3 * w, outBase = o + i * total * w
            let (start, n) = (starts[s], blockRows(s))
            attention(batch: 1, heads: h, lq: n, lk: start + n, headDim: d, q: base + start * 3 * w, ldq: 3 * w,
                      k: base + w, ldk: 3 * w, v: base + 2 * w, ldv: 3 * w, out: outBase + start * w, ldo: w,
                      lse: lse[s] + i * h * n, scale: scale)
            for a in 0..<s {
                let (sa, na) = (starts[a], blockRows(a))
                attention(batch: 1, heads: h, lq: na, lk: n, headDim: d, q: base + sa * 3 * w, ldq: 3 * w,
                          k: base + start * 3 * w + w, ldk: 3 * w, v: base + start * 3 * w + 2 * w, ldv: 3 * w,
                          out: part.data, ldo: w, lse: partLse.data, scale: scale)
                attentionMerge(batch: 1, heads: h, lq: na, headDim: d, out: outBase + sa * w, ldo: w, lse: lse[a] + i * h * na,
                               part: part.data, ldp: w, partLse: partLse.data)
            }
        }
        withExtendedLifetime((part, partLse)) {}
    }

    /// Block s's outputs [batch, rows, width], to go back to its node.
    func packOutput(block s: Int, batch b: Int, o: UnsafePointer<Float>) -> Tensor {
        let count = blockRows(s) * width
        let out = Tensor(uninitialized: [b * count])
        for i in 0..<b { (out.data + i * count).update(from: o + (i * total + starts[s]) * width, count: count) }
        return out
    }

    /// This rank's own rows, its heads, from block 0 of the outputs.
    func writeLocal(batch b: Int, o: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, ldo: Int) {
        for i in 0..<b {
            copy2D(rows: shardRows.count, cols: width, src: o + (i * total + textRows.count) * width, lds: width,
                   dst: out + (i * rows + shardRows.lowerBound) * ldo + heads[me].lowerBound * headDim, ldd: ldo)
        }
    }

    /// Node j's heads of this rank's rows: [batch, own rows, headWidth(j)].
    func writeShard(batch b: Int, fromNode j: Int, block: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, ldo: Int) {
        let (n, hw) = (shardRows.count, headWidth(j))
        for i in 0..<b {
            copy2D(rows: n, cols: hw, src: block + i * n * hw, lds: hw,
                   dst: out + (i * rows + shardRows.lowerBound) * ldo + heads[j].lowerBound * headDim, ldd: ldo)
        }
    }

    /// The text rows' outputs for this rank's heads: [batch, text rows, width].
    func packText(batch b: Int, o: UnsafePointer<Float>) -> Tensor {
        let t = textRows.count
        let out = Tensor(uninitialized: [b * t * width])
        for i in 0..<b { (out.data + i * t * width).update(from: o + i * total * width, count: t * width) }
        return out
    }

    /// Every node's text heads [node][batch][text rows][its width] into the text rows of out.
    func writeText(batch b: Int, all: UnsafePointer<Float>, counts: [Int], out: UnsafeMutablePointer<Float>, ldo: Int) {
        var src = 0
        let t = textRows.count
        for j in 0..<m {
            let hw = headWidth(j)
            for i in 0..<b {
                copy2D(rows: t, cols: hw, src: all + src + i * t * hw, lds: hw,
                       dst: out + (i * rows + textRows.lowerBound) * ldo + heads[j].lowerBound * headDim, ldd: ldo)
            }
            src += counts[j]
        }
    }
}
