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
        let e = ProcessInfo.processInfo.environment
        self.queryBlock = Int(e["QB"] ?? "") ?? queryBlock
        self.keyBlock = Int(e["KB"] ?? "") ?? keyBlock
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
    let scratch = AttentionScratch(threads: pool.threadCount, queryBlock: bq, keyBlock: bk, headDim: headDim)
    pool.parallelFor(batch * heads * qBlocks) { item, worker in
        let b = item / (heads * qBlocks), h = (item / qBlocks) % heads, i0 = (item % qBlocks) * bq
        attentionBlock(
            rows: min(bq, lq - i0), lk: lk, headDim: headDim,
            q: q + (b * lq + i0) * ldq + h * headDim, ldq: ldq,
            k: k + b * lk * ldk + h * headDim, ldk: ldk, v: v + b * lk * ldv + h * headDim, ldv: ldv,
            out: out + (b * lq + i0) * ldo + h * headDim, ldo: ldo,
            lse: lse.map { $0 + (b * heads + h) * lq + i0 }, scale: scale,
            mask: mask.map { $0.data + b * $0.batchStride + i0 * $0.rowStride }, maskRowStride: mask?.rowStride ?? 0,
            scratch: scratch.views(worker))
    }
    withExtendedLifetime(scratch) {}
}

@inline(__always) func roundUp16(_ n: Int) -> Int { (n + 15) / 16 * 16 }
@inline(__always) func roundUp6(_ n: Int) -> Int { (n + 5) / 6 * 6 }

/// One thread's buffers for `attentionBlock`. Query rows are padded to the microkernel's 6-row
/// tiles and widths to its 16-column panels, with zeros, so every tile is a full one.
struct AttentionScratchViews {
    var keyBlock, keyPad, headPad: Int
    var queries: UnsafeMutablePointer<Float>   // [queryRows × headDim], the query block, contiguous
    var scores: UnsafeMutablePointer<Float>    // [queryRows × keyPad]
    var keysT: UnsafeMutablePointer<Float>     // Kᵀ of the key block in panels of [headDim × 16]
    var values: UnsafeMutablePointer<Float>    // V of the key block in panels of [keyBlock × 16]
    var outAcc: UnsafeMutablePointer<Float>    // [queryRows × headPad]
    var rowMax: UnsafeMutablePointer<Float>    // [queryBlock]
    var rowSum: UnsafeMutablePointer<Float>    // [queryBlock]
}

/// Per-thread scratch for the fused kernel, one allocation, each thread's share cache-line aligned.
final class AttentionScratch {
    let storage: TensorStorage
    let perThread: Int
    let layout: [Int]
    let keyBlock, headDim: Int

    init(threads: Int, queryBlock: Int, keyBlock: Int, headDim: Int) {
        (self.keyBlock, self.headDim) = (keyBlock, headDim)
        let rows = roundUp6(queryBlock), keyPad = roundUp16(keyBlock), headPad = roundUp16(headDim)
        let sizes = [rows * headDim, rows * keyPad, headDim * keyPad, keyBlock * headPad, rows * headPad,
                     queryBlock, queryBlock]
        layout = sizes.map { ($0 + 15) / 16 * 16 }
        perThread = layout.reduce(0, +)
        storage = TensorStorage(count: threads * perThread)
    }

    func views(_ worker: Int) -> AttentionScratchViews {
        var p = storage.base + worker * perThread
        var parts: [UnsafeMutablePointer<Float>] = []
        for size in layout { parts.append(p); p += size }
        return AttentionScratchViews(keyBlock: keyBlock, keyPad: roundUp16(keyBlock), headPad: roundUp16(headDim),
                                     queries: parts[0], scores: parts[1], keysT: parts[2], values: parts[3],
                                     outAcc: parts[4], rowMax: parts[5], rowSum: parts[6])
    }
}

/// One query block of one head against all keys, FlashAttention-style: for each key block,
/// S = scale·Q·Kᵀ, online-softmax update of the row max and sum, O += P·V; then O /= sum.
@inline(__always)
func attentionBlock(
    rows: Int, lk: Int, headDim: Int,
    q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int, v: UnsafePointer<Float>, ldv: Int,
    out: UnsafeMutablePointer<Float>, ldo: Int, lse: UnsafeMutablePointer<Float>?, scale: Float,
    mask: UnsafePointer<Float>?, maskRowStride: Int, scratch w: AttentionScratchViews
) {
    let tileRows = roundUp6(rows)
    for r in 0..<rows { (w.queries + r * headDim).update(from: q + r * ldq, count: headDim) }
    (w.queries + rows * headDim).update(repeating: 0, count: (tileRows - rows) * headDim)
    w.rowMax.initialize(repeating: -.infinity, count: rows)
    w.rowSum.initialize(repeating: 0, count: rows)
    w.outAcc.initialize(repeating: 0, count: tileRows * w.headPad)
    var j0 = 0
    while j0 < lk {
        let cols = min(w.keyBlock, lk - j0), colsPad = roundUp16(cols)
        packKeysTransposed(keys: cols, headDim: headDim, src: k + j0 * ldk, lds: ldk, dst: w.keysT, keysPad: colsPad)
        microGemm(m: tileRows, n: colsPad, k: headDim, alpha: scale, a: w.queries, lda: headDim,
                  b: w.keysT, ldb: microTileCols, panelStride: microTileCols * headDim,
                  c: w.scores, ldc: w.keyPad, accumulate: false, rowPad: nil)
        for r in 0..<rows {
            let s = w.scores + r * w.keyPad
            let mOld = w.rowMax[r]
            let mNew = max(mOld, maskedRowMax(s, cols, mask.map { $0 + r * maskRowStride + j0 }))
            if mNew == -.infinity {
                // Every key so far is masked: contribute nothing.
                s.update(repeating: 0, count: cols)
                continue
            }
            let correction = Foundation.exp(mOld - mNew)
            w.rowSum[r] = w.rowSum[r] * correction + expShiftedInPlace(s, cols, mNew)
            if correction != 1 { scaleRow(w.outAcc + r * w.headPad, headDim, correction) }
            w.rowMax[r] = mNew
        }
        packValues(keys: cols, headDim: headDim, src: v + j0 * ldv, lds: ldv, dst: w.values, headPad: w.headPad)
        microGemm(m: tileRows, n: w.headPad, k: cols, alpha: 1, a: w.scores, lda: w.keyPad,
                  b: w.values, ldb: microTileCols, panelStride: microTileCols * cols,
                  c: w.outAcc, ldc: w.headPad, accumulate: true, rowPad: nil)
        j0 += cols
    }
    for r in 0..<rows {
        let l = w.rowSum[r]
        let o = out + r * ldo
        o.update(from: w.outAcc + r * w.headPad, count: headDim)
        scaleRow(o, headDim, l > 0 ? 1 / l : 0)
        lse?[r] = l > 0 ? w.rowMax[r] + Foundation.log(l) : -.infinity
    }
}

/// Kᵀ of a key block [keys × headDim] (row stride lds) into panels: panel p = keys 16p..<16p+16,
/// a contiguous [headDim × 16] block; keys from `keys` to `keysPad` are zero.
@inline(__always)
func packKeysTransposed(keys: Int, headDim: Int, src: UnsafePointer<Float>, lds: Int,
                        dst: UnsafeMutablePointer<Float>, keysPad: Int) {
    for key in 0..<keys {
        let s = src + key * lds
        let panel = dst + (key / microTileCols) * microTileCols * headDim + key % microTileCols
        for d in 0..<headDim { panel[d * microTileCols] = s[d] }
    }
    for key in keys..<keysPad {
        let panel = dst + (key / microTileCols) * microTileCols * headDim + key % microTileCols
        for d in 0..<headDim { panel[d * microTileCols] = 0 }
    }
}

/// V of a key block [keys × headDim] (row stride lds) into panels: panel p = channels
/// 16p..<16p+16, a contiguous [keys × 16] block; channels from headDim to headPad are zero.
@inline(__always)
func packValues(keys: Int, headDim: Int, src: UnsafePointer<Float>, lds: Int,
                dst: UnsafeMutablePointer<Float>, headPad: Int) {
    for p in 0..<(headPad / microTileCols) {
        let c0 = p * microTileCols, width = min(microTileCols, headDim - c0)
        let panel = dst + p * microTileCols * keys
        for key in 0..<keys {
            let row = panel + key * microTileCols
            if width == microTileCols {
                store8(load8(src + key * lds + c0), row)
                store8(load8(src + key * lds + c0 + 8), row + 8)
            } else {
                row.update(from: src + key * lds + c0, count: width)
                (row + width).update(repeating: 0, count: microTileCols - width)
            }
        }
    }
}

/// Adds the mask row into s (if any) and returns the row maximum.
@inline(__always)
func maskedRowMax(_ s: UnsafeMutablePointer<Float>, _ n: Int, _ mask: UnsafePointer<Float>?) -> Float {
    var m0 = F8(repeating: -.infinity), m1 = m0
    var j = 0
    if let mask {
        while j + 8 <= n { let x = load8(s + j) + load8(mask + j); store8(x, s + j); m0 = vmax(m0, x); j += 8 }
        var m = hmax(m0)
        while j < n { s[j] += mask[j]; m = max(m, s[j]); j += 1 }
        return m
    }
    while j + 16 <= n { m0 = vmax(m0, load8(s + j)); m1 = vmax(m1, load8(s + j + 8)); j += 16 }
    var m = hmax(vmax(m0, m1))
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
