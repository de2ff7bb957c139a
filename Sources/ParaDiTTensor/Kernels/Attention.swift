import Foundation

// Fused scaled-dot-product attention: blockwise with an online softmax (the FlashAttention
// recurrence), returning the log-sum-exp of every query row so that partial results over
// different key sets (Ring, Torus, stale K/V) can be merged exactly with `attentionMerge`.
//
// Layout is token-major, as linear projections produce it, so no head permutes are needed:
//   q:   [batch, lq, heads, headDim], rows of stride ldq (≥ heads·headDim); head h at column h·headDim
//   k,v: [batch, lk, heads, headDim], strides ldk, ldv (a fused QKV buffer is read in place)
//   out: [batch, lq, heads, headDim], stride ldo
//   lse: [batch, heads, lq] (natural log, of the scaled scores; −inf for a fully masked row)
// Both block products go through BLAS; the softmax between them is SIMD Swift.

/// An additive attention bias: element (b, i, j) at `data[b·batchStride + i·rowStride + j]`.
/// A stride of 0 broadcasts (rowStride 0: one key-padding row per sample). −inf masks a key.
public struct AttentionMask: @unchecked Sendable {
    public var data: UnsafePointer<Float>
    public var batchStride: Int
    public var rowStride: Int
    public init(data: UnsafePointer<Float>, batchStride: Int, rowStride: Int) {
        self.data = data
        self.batchStride = batchStride
        self.rowStride = rowStride
    }
}

/// Block sizes of the fused kernel: `queryBlock` rows of Q against `keyBlock` keys at a time.
/// The score block (queryBlock × keyBlock floats) stays in L2.
public struct AttentionBlocking: Sendable {
    public var queryBlock: Int
    public var keyBlock: Int
    public init(queryBlock: Int = 64, keyBlock: Int = 512) {
        self.queryBlock = queryBlock
        self.keyBlock = keyBlock
    }
}

/// Fused attention; see the file header for layouts. `lse` may be nil.
public func attention(
    batch: Int, heads: Int, lq: Int, lk: Int, headDim: Int,
    q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
    v: UnsafePointer<Float>, ldv: Int,
    out: UnsafeMutablePointer<Float>, ldo: Int, lse: UnsafeMutablePointer<Float>?,
    scale: Float, mask: AttentionMask? = nil,
    blocking: AttentionBlocking = AttentionBlocking(), pool: ThreadPool = .current
) {
    if lq == 0 || batch == 0 || heads == 0 { return }
    let bq = blocking.queryBlock, bk = min(blocking.keyBlock, max(lk, 1))
    let qBlocks = (lq + bq - 1) / bq
    let scratch = AttentionScratch(threads: pool.threadCount, queryBlock: bq, keyBlock: bk)
    pool.parallelFor(batch * heads * qBlocks) { item, worker in
        let b = item / (heads * qBlocks), h = (item / qBlocks) % heads, i0 = (item % qBlocks) * bq
        let rows = min(bq, lq - i0)
        let o = out + (b * lq + i0) * ldo + h * headDim
        attentionBlock(
            rows: rows, lk: lk, headDim: headDim, keyBlock: bk,
            q: q + (b * lq + i0) * ldq + h * headDim, ldq: ldq,
            k: k + b * lk * ldk + h * headDim, ldk: ldk, v: v + b * lk * ldv + h * headDim, ldv: ldv,
            out: o, ldo: ldo, lse: lse.map { $0 + (b * heads + h) * lq + i0 }, scale: scale,
            mask: mask.map { $0.data + b * $0.batchStride + i0 * $0.rowStride }, maskRowStride: mask?.rowStride ?? 0,
            scores: scratch.scores(worker), rowMax: scratch.rowMax(worker), rowSum: scratch.rowSum(worker))
    }
    withExtendedLifetime(scratch) {}
}

/// Per-thread buffers: a score block and two row vectors.
final class AttentionScratch {
    let storage: TensorStorage
    let perThread: Int, queryBlock: Int, keyBlock: Int
    init(threads: Int, queryBlock: Int, keyBlock: Int) {
        self.queryBlock = queryBlock
        self.keyBlock = keyBlock
        // Round each thread's share to a cache line so threads never share one.
        perThread = (queryBlock * (keyBlock + 2) + 15) / 16 * 16
        storage = TensorStorage(count: threads * perThread)
    }
    func scores(_ w: Int) -> UnsafeMutablePointer<Float> { storage.base + w * perThread }
    func rowMax(_ w: Int) -> UnsafeMutablePointer<Float> { scores(w) + queryBlock * keyBlock }
    func rowSum(_ w: Int) -> UnsafeMutablePointer<Float> { rowMax(w) + queryBlock }
}

/// One query block of one head against all keys. `out` doubles as the output accumulator.
@inline(__always)
func attentionBlock(
    rows: Int, lk: Int, headDim: Int, keyBlock: Int,
    q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int, v: UnsafePointer<Float>, ldv: Int,
    out: UnsafeMutablePointer<Float>, ldo: Int, lse: UnsafeMutablePointer<Float>?, scale: Float,
    mask: UnsafePointer<Float>?, maskRowStride: Int,
    scores: UnsafeMutablePointer<Float>, rowMax: UnsafeMutablePointer<Float>, rowSum: UnsafeMutablePointer<Float>
) {
    rowMax.initialize(repeating: -.infinity, count: rows)
    rowSum.initialize(repeating: 0, count: rows)
    var j0 = 0
    if lk == 0 {
        for r in 0..<rows { (out + r * ldo).initialize(repeating: 0, count: headDim) }
    }
    while j0 < lk {
        let cols = min(keyBlock, lk - j0)
        // S = scale · Q Kᵀ  [rows × cols]
        sgemmSerial(transA: false, transB: true, m: rows, n: cols, k: headDim, alpha: scale,
                    a: q, lda: ldq, b: k + j0 * ldk, ldb: ldk, beta: 0, c: scores, ldc: keyBlock)
        for r in 0..<rows {
            let s = scores + r * keyBlock
            let rowMask = mask.map { $0 + r * maskRowStride + j0 }
            let mOld = rowMax[r]
            let mNew = max(mOld, maskedRowMax(s, cols, rowMask))
            if mNew == -.infinity {
                // Every key so far is masked: contribute nothing.
                s.update(repeating: 0, count: cols)
                continue
            }
            rowSum[r] = rowSum[r] * Foundation.exp(mOld - mNew) + expShiftedInPlace(s, cols, mNew)
            if j0 > 0 && mOld != mNew { scaleRow(out + r * ldo, headDim, Foundation.exp(mOld - mNew)) }
            rowMax[r] = mNew
        }
        // O (+)= P V  [rows × headDim]
        sgemmSerial(transA: false, transB: false, m: rows, n: headDim, k: cols, alpha: 1,
                    a: scores, lda: keyBlock, b: v + j0 * ldv, ldb: ldv, beta: j0 == 0 ? 0 : 1, c: out, ldc: ldo)
        j0 += cols
    }
    for r in 0..<rows {
        let l = rowSum[r]
        scaleRow(out + r * ldo, headDim, l > 0 ? 1 / l : 0)
        lse?[r] = l > 0 ? rowMax[r] + Foundation.log(l) : -.infinity
    }
}

/// Adds the mask row into s (if any) and returns the row maximum.
@inline(__always)
func maskedRowMax(_ s: UnsafeMutablePointer<Float>, _ n: Int, _ mask: UnsafePointer<Float>?) -> Float {
    var m0 = F8(repeating: -.infinity), m1 = m0
    var j = 0
    if let mask {
        while j + 8 <= n { let x = load8(s + j) + load8(mask + j); store8(x, s + j); m0 = pointwiseMax(m0, x); j += 8 }
        var m = m0.max()
        while j < n { s[j] += mask[j]; m = max(m, s[j]); j += 1 }
        return m
    }
    while j + 16 <= n { m0 = pointwiseMax(m0, load8(s + j)); m1 = pointwiseMax(m1, load8(s + j + 8)); j += 16 }
    var m = pointwiseMax(m0, m1).max()
    while j < n { m = max(m, s[j]); j += 1 }
    return m
}

/// s[j] = e^(s[j] − shift); returns the sum.
@inline(__always)
func expShiftedInPlace(_ s: UnsafeMutablePointer<Float>, _ n: Int, _ shift: Float) -> Float {
    let sv = F8(repeating: shift)
    var a0 = F8(), a1 = F8()
    var j = 0
    while j + 16 <= n {
        let e0 = exp8(load8(s + j) - sv), e1 = exp8(load8(s + j + 8) - sv)
        store8(e0, s + j); store8(e1, s + j + 8)
        a0 += e0; a1 += e1
        j += 16
    }
    while j + 8 <= n { let e = exp8(load8(s + j) - sv); store8(e, s + j); a0 += e; j += 8 }
    if j < n {
        let e = exp8(loadPartial(s + j, n - j) - sv)
        storePartial(e, s + j, n - j)
        for i in 0..<(n - j) { a1[i] += e[i] }
    }
    return (a0 + a1).sum()
}

@inline(__always)
func scaleRow(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ c: Float) {
    var j = 0
    while j + 8 <= n { store8(load8(p + j) * c, p + j); j += 8 }
    while j < n { p[j] *= c; j += 1 }
}

// MARK: - Merge of partial attention

/// Merges a partial attention result over another key set into (out, lse), in place:
/// lse' = log(e^lse + e^lsePart), out' = out·e^(lse−lse') + part·e^(lsePart−lse').
/// Shapes as in `attention` (out and part [batch, lq, heads, headDim] with strides; lse [batch, heads, lq]).
public func attentionMerge(
    batch: Int, heads: Int, lq: Int, headDim: Int,
    out: UnsafeMutablePointer<Float>, ldo: Int, lse: UnsafeMutablePointer<Float>,
    part: UnsafePointer<Float>, ldp: Int, partLse: UnsafePointer<Float>, pool: ThreadPool = .current
) {
    pool.parallelChunks(batch * lq, minChunk: max(1, elementwiseGrain / max(heads * headDim, 1))) { range, _ in
        for row in range {
            let b = row / lq, i = row % lq
            for h in 0..<heads {
                let li = (b * heads + h) * lq + i
                let a = lse[li], c = partLse[li]
                let m = max(a, c)
                if m == -.infinity { continue }
                let wa = Foundation.exp(a - m), wc = Foundation.exp(c - m)
                let total = wa + wc
                lse[li] = m + Foundation.log(total)
                let o = out + row * ldo + h * headDim, p = part + row * ldp + h * headDim
                let fa = F8(repeating: wa / total), fc = F8(repeating: wc / total)
                var j = 0
                while j + 8 <= headDim { store8(load8(o + j) * fa + load8(p + j) * fc, o + j); j += 8 }
                while j < headDim { o[j] = o[j] * (wa / total) + p[j] * (wc / total); j += 1 }
            }
        }
    }
}

// MARK: - Reference

/// Reference attention: full score rows in Double, then softmax. Same layouts as `attention`.
public func attentionReference(
    batch: Int, heads: Int, lq: Int, lk: Int, headDim: Int,
    q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
    v: UnsafePointer<Float>, ldv: Int,
    out: UnsafeMutablePointer<Float>, ldo: Int, lse: UnsafeMutablePointer<Float>?,
    scale: Float, mask: AttentionMask? = nil
) {
    var s = [Double](repeating: 0, count: max(lk, 1))
    for b in 0..<batch { for h in 0..<heads { for i in 0..<lq {
        let qi = q + (b * lq + i) * ldq + h * headDim
        var m = -Double.infinity
        for j in 0..<lk {
            let kj = k + (b * lk + j) * ldk + h * headDim
            var dot = 0.0
            for d in 0..<headDim { dot += Double(qi[d]) * Double(kj[d]) }
            s[j] = dot * Double(scale) + Double(mask.map { $0.data[b * $0.batchStride + i * $0.rowStride + j] } ?? 0)
            m = max(m, s[j])
        }
        var total = 0.0
        if m > -.infinity { for j in 0..<lk { s[j] = Foundation.exp(s[j] - m); total += s[j] } }
        let o = out + (b * lq + i) * ldo + h * headDim
        for d in 0..<headDim {
            var acc = 0.0
            if total > 0 { for j in 0..<lk { acc += s[j] * Double(v[(b * lk + j) * ldv + h * headDim + d]) } }
            o[d] = total > 0 ? Float(acc / total) : 0
        }
        lse?[(b * heads + h) * lq + i] = total > 0 ? Float(m + Foundation.log(total)) : -.infinity
    } } }
}

// MARK: - Tensor-level

/// Attention over q: [B, Lq, H, D], k, v: [B, Lk, H, D] → [B, Lq, H, D] (and lse [B, H, Lq]).
/// The scale defaults to 1/√D as in torch's scaled_dot_product_attention.
public func attention(q: Tensor, k: Tensor, v: Tensor, scale: Float? = nil, mask: Tensor? = nil,
                      returnLSE: Bool = false) -> (out: Tensor, lse: Tensor?) {
    check(q.rank == 4 && k.rank == 4 && k.shape == v.shape && q.size(0) == k.size(0)
          && q.size(2) == k.size(2) && q.size(3) == k.size(3),
          "attention needs q [B, Lq, H, D] and k, v [B, Lk, H, D], got \(q.shape), \(k.shape), \(v.shape)")
    let (b, lq, h, d, lk) = (q.size(0), q.size(1), q.size(2), q.size(3), k.size(1))
    if let mask {
        check(mask.shape == [b, lq, lk] || mask.shape == [b, 1, lk],
              "attention mask must be [B, Lq, Lk] or [B, 1, Lk] = [\(b), \(lq)|1, \(lk)], got \(mask.shape)")
    }
    let out = Tensor(uninitialized: q.shape)
    let lse = returnLSE ? Tensor(uninitialized: [b, h, lq]) : nil
    withExtendedLifetime((q, k, v, mask, lse)) {
        let m = mask.map { AttentionMask(data: $0.data, batchStride: $0.size(1) * lk, rowStride: $0.size(1) == 1 ? 0 : lk) }
        attention(batch: b, heads: h, lq: lq, lk: lk, headDim: d, q: q.data, ldq: h * d, k: k.data, ldk: h * d,
                  v: v.data, ldv: h * d, out: out.data, ldo: h * d, lse: lse?.data,
                  scale: scale ?? 1 / Float(d).squareRoot(), mask: m)
    }
    return (out, lse)
}
