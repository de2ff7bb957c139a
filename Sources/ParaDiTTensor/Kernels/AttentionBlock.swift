import Foundation

// The inside of the fused attention kernel: K and V packed once per head into the microkernel's
// panel layout, per-thread scratch, and the FlashAttention recurrence over one query block.
//
// Packing once per head (instead of once per query block) matters: K and V rows of one head are
// heads·headDim floats apart, often exactly a page, so re-reading them per query block was a page
// walk per row. The packing itself goes by groups of 16 keys across all heads (the group's rows stay
// in cache while every head takes its slice), and transposes K in 4×4 blocks with vector stores: a
// scalar store per element into 16-float panel rows was most of the packing time.

@inline(__always) func roundUp16(_ n: Int) -> Int { (n + 15) / 16 * 16 }
@inline(__always) func roundUp6(_ n: Int) -> Int { (n + 5) / 6 * 6 }

/// K and V of every (batch, head), packed:
///   Kᵀ: for each group of 16 keys, a contiguous [headDim × 16] panel (keys past lk are zero);
///   V:  for each group of 16 channels, a contiguous [lkPad × 16] panel (channels past headDim are zero).
struct PackedKeysValues {
    let base: UnsafeMutablePointer<Float>
    let lk, lkPad, headDim, headPad, perHead: Int

    /// Floats needed for `batch · heads` packed heads.
    static func count(batch: Int, heads: Int, lk: Int, headDim: Int) -> Int {
        batch * heads * roundUp16(max(lk, 1)) * (headDim + roundUp16(headDim))
    }

    /// Packs into `base`, which has room for `count(…)` floats, in parallel over groups of 16 keys;
    /// `bf16`: every value rounded to bfloat16.
    init(batch: Int, heads: Int, lk: Int, headDim: Int, k: UnsafePointer<Float>, ldk: Int,
         v: UnsafePointer<Float>, ldv: Int, into base: UnsafeMutablePointer<Float>, bf16: Bool, pool: ThreadPool) {
        (self.lk, self.headDim, self.base) = (lk, headDim, base)
        lkPad = roundUp16(max(lk, 1))
        headPad = roundUp16(headDim)
        perHead = lkPad * headDim + lkPad * headPad
        let groups = lkPad / microTileCols
        let (lkPad, perHead) = (lkPad, perHead)
        pool.parallelFor(batch * groups) { item, _ in
            let b = item / groups, j0 = (item % groups) * microTileCols
            packKeyGroup(keys: min(microTileCols, max(0, lk - j0)), heads: heads, headDim: headDim, headPad: headPad,
                         k: k + (b * lk + j0) * ldk, ldk: ldk, v: v + (b * lk + j0) * ldv, ldv: ldv,
                         keysT: base + b * heads * perHead + j0 * headDim,
                         values: base + b * heads * perHead + lkPad * headDim + j0 * microTileCols,
                         headStride: perHead, valuePanelStride: microTileCols * lkPad, bf16: bf16)
        }
    }

    /// The packed K and V of head `bh` = b·heads + h.
    func head(_ bh: Int) -> PackedHead {
        let kT = base + bh * perHead
        return PackedHead(lk: lk, lkPad: lkPad, headDim: headDim, headPad: headPad, keysT: kT, values: kT + lkPad * headDim)
    }
}

struct PackedHead {
    var lk, lkPad, headDim, headPad: Int
    var keysT: UnsafePointer<Float>
    var values: UnsafePointer<Float>
}

/// Up to 16 keys of every head into their Kᵀ panel (at keysT + h·headStride) and their rows of the
/// V panels (at values + h·headStride + p·valuePanelStride), zero-filled to 16 keys and headPad
/// channels; `bf16`: rounded to bfloat16 while the group is in cache.
@inline(__always)
func packKeyGroup(keys: Int, heads: Int, headDim: Int, headPad: Int, k: UnsafePointer<Float>, ldk: Int,
                  v: UnsafePointer<Float>, ldv: Int, keysT: UnsafeMutablePointer<Float>,
                  values: UnsafeMutablePointer<Float>, headStride: Int, valuePanelStride: Int, bf16: Bool) {
    for h in 0..<heads {
        let kT = keysT + h * headStride, kSrc = k + h * headDim
        if keys == microTileCols && headDim % 4 == 0 {
            for key in stride(from: 0, to: microTileCols, by: 4) {
                for d in stride(from: 0, to: headDim, by: 4) {
                    transpose4x4(kSrc + key * ldk + d, ldk, into: kT + d * microTileCols + key, microTileCols)
                }
            }
        } else {
            kT.update(repeating: 0, count: headDim * microTileCols)
            for key in 0..<keys { for d in 0..<headDim { kT[d * microTileCols + key] = kSrc[key * ldk + d] } }
        }
        for p in 0..<(headPad / microTileCols) {
            let c0 = p * microTileCols, width = min(microTileCols, headDim - c0)
            let panel = values + h * headStride + p * valuePanelStride, src = v + h * headDim + c0
            for key in 0..<keys {
                let row = panel + key * microTileCols
                if width == microTileCols {
                    store8(load8(src + key * ldv), row)
                    store8(load8(src + key * ldv + 8), row + 8)
                } else {
                    row.update(from: src + key * ldv, count: width)
                    (row + width).update(repeating: 0, count: microTileCols - width)
                }
            }
            (panel + keys * microTileCols).update(repeating: 0, count: (microTileCols - keys) * microTileCols)
            if bf16 { roundToBFloat16(panel, count: microTileCols * microTileCols) }
        }
        if bf16 { roundToBFloat16(kT, count: headDim * microTileCols) }
    }
}

/// The 4×4 block at src (rows lds apart) transposed into dst (rows ldd apart).
@inline(__always)
func transpose4x4(_ src: UnsafePointer<Float>, _ lds: Int, into dst: UnsafeMutablePointer<Float>, _ ldd: Int) {
    let a = load4(src), b = load4(src + lds), c = load4(src + 2 * lds), d = load4(src + 3 * lds)
    let ab0 = F4(a[0], b[0], a[1], b[1]), ab1 = F4(a[2], b[2], a[3], b[3])
    let cd0 = F4(c[0], d[0], c[1], d[1]), cd1 = F4(c[2], d[2], c[3], d[3])
    store4(F4(ab0[0], ab0[1], cd0[0], cd0[1]), dst)
    store4(F4(ab0[2], ab0[3], cd0[2], cd0[3]), dst + ldd)
    store4(F4(ab1[0], ab1[1], cd1[0], cd1[1]), dst + 2 * ldd)
    store4(F4(ab1[2], ab1[3], cd1[2], cd1[3]), dst + 3 * ldd)
}

// MARK: - Scratch

/// Query rows per pass of `attentionBlock` (two microkernel tiles): their scores, 12 × keyBlock,
/// stay in L1 from the Q·Kᵀ product through the softmax to the P·V product.
let attentionStripRows = 2 * microTileRows

/// One thread's buffers for `attentionBlock`. Query rows are padded to the microkernel's 6-row
/// tiles with zeros, so every tile is a full one.
struct AttentionScratchViews {
    var keyBlock: Int
    var queries: UnsafeMutablePointer<Float>   // [queryRows × headDim], the query block, contiguous
    var scores: UnsafeMutablePointer<Float>    // [stripRows × keyBlock]
    var outAcc: UnsafeMutablePointer<Float>    // [queryRows × headPad]
    var rowMax: UnsafeMutablePointer<Float>    // [queryBlock]
    var rowSum: UnsafeMutablePointer<Float>    // [queryBlock]
    var laneMax: UnsafeMutablePointer<F8>      // [stripRows], the scores' lane-wise row maxima
}

/// Per-thread scratch for the fused kernel, carved from one buffer, each thread's share
/// cache-line aligned.
struct AttentionScratch {
    let base: UnsafeMutablePointer<Float>
    let perThread: Int
    let layout: [Int]
    let keyBlock: Int

    init(queryBlock: Int, keyBlock: Int, headDim: Int, base: UnsafeMutablePointer<Float>) {
        self.keyBlock = keyBlock
        self.base = base
        layout = Self.layout(queryBlock: queryBlock, keyBlock: keyBlock, headDim: headDim)
        perThread = layout.reduce(0, +)
    }

    /// Sizes of the six per-thread buffers, each rounded to a cache line.
    static func layout(queryBlock: Int, keyBlock: Int, headDim: Int) -> [Int] {
        let rows = roundUp6(queryBlock)
        let sizes = [rows * headDim, attentionStripRows * keyBlock, rows * roundUp16(headDim), queryBlock, queryBlock,
                     attentionStripRows * F8.scalarCount]
        return sizes.map { ($0 + 15) / 16 * 16 }
    }

    func views(_ worker: Int) -> AttentionScratchViews {
        var p = base + worker * perThread
        var parts: [UnsafeMutablePointer<Float>] = []
        for size in layout { parts.append(p); p += size }
        return AttentionScratchViews(keyBlock: keyBlock, queries: parts[0], scores: parts[1], outAcc: parts[2],
                                     rowMax: parts[3], rowSum: parts[4],
                                     laneMax: UnsafeMutableRawPointer(parts[5]).assumingMemoryBound(to: F8.self))
    }
}

// MARK: - One query block

/// One query block of one head against all its keys, FlashAttention-style: for each key block and
/// each strip of 12 query rows, S = scale·Q·Kᵀ, an online-softmax update of the row max and sum,
/// O += P·V; at the end O /= sum. The scores are kept in base 2 (scaled by log2 e), where the
/// exponential is cheaper; the log-sum-exp is converted back. `bf16`: the queries and P are rounded
/// to bfloat16 before their products (K and V were when packed); the row sums add P unrounded; the
/// running maximum is a whole number (base 2).
@inline(__always)
func attentionBlock(
    rows: Int, headDim: Int, q: UnsafePointer<Float>, ldq: Int, kv: PackedHead,
    out: UnsafeMutablePointer<Float>, ldo: Int, lse: UnsafeMutablePointer<Float>?, scale: Float, bf16: Bool,
    mask: UnsafePointer<Float>?, maskRowStride: Int, scratch w: AttentionScratchViews
) {
    let tileRows = roundUp6(rows), headPad = kv.headPad
    let log2e = 1.4426950408889634, scale2 = Float(Double(scale) * log2e)
    for r in 0..<rows { (w.queries + r * headDim).update(from: q + r * ldq, count: headDim) }
    if bf16 { roundToBFloat16(w.queries, count: rows * headDim) }
    (w.queries + rows * headDim).update(repeating: 0, count: (tileRows - rows) * headDim)
    w.rowMax.initialize(repeating: -.infinity, count: rows)
    w.rowSum.initialize(repeating: 0, count: rows)
    w.outAcc.initialize(repeating: 0, count: tileRows * headPad)
    var j0 = 0
    while j0 < kv.lk {
        let cols = min(w.keyBlock, kv.lk - j0)
        // The tile stores track the row maxima unless a mask changes the scores afterwards or
        // padding keys (scores 0) would join them.
        let fusedMax = mask == nil && cols % microTileCols == 0
        var s0 = 0
        while s0 < tileRows {
            let strip = min(attentionStripRows, tileRows - s0)
            if fusedMax { w.laneMax.update(repeating: F8(repeating: -.infinity), count: strip) }
            microGemm(m: strip, n: roundUp16(cols), k: headDim, alpha: scale2, a: w.queries + s0 * headDim, lda: headDim,
                      b: kv.keysT + j0 * headDim, ldb: microTileCols, panelStride: microTileCols * headDim,
                      c: w.scores, ldc: w.keyBlock, accumulate: false, rowPad: nil, laneMax: fusedMax ? w.laneMax : nil)
            for r in s0..<min(s0 + strip, rows) {
                let s = w.scores + (r - s0) * w.keyBlock
                let mOld = w.rowMax[r]
                var mNew = max(mOld, fusedMax ? hmax(w.laneMax[r - s0])
                                              : maskedRowMax(s, cols, mask.map { $0 + r * maskRowStride + j0 }, Float(log2e)))
                // BF16 rounds P = 2^(s − m). A whole m makes every rescale a power of two, which commutes
                // with the rounding: P then does not depend on how the keys are blocked or split over ranks.
                if bf16 { mNew = mNew.rounded(.up) }
                if mNew == -.infinity {
                    // Every key so far is masked: contribute nothing. The maxima skip NaN, so a NaN
                    // score is found here and poisons the row sum, as PyTorch's softmax would.
                    if (0..<cols).contains(where: { s[$0].isNaN }) { w.rowSum[r] = .nan }
                    s.update(repeating: 0, count: cols)
                    continue
                }
                let correction = Foundation.exp2(mOld - mNew)
                w.rowSum[r] = w.rowSum[r] * correction + exp2ShiftedInPlace(s, cols, mNew, bf16: bf16)
                if correction != 1 { scaleRow(w.outAcc + r * headPad, headDim, correction) }
                w.rowMax[r] = mNew
            }
            microGemm(m: strip, n: headPad, k: cols, alpha: 1, a: w.scores, lda: w.keyBlock,
                      b: kv.values + j0 * microTileCols, ldb: microTileCols, panelStride: microTileCols * kv.lkPad,
                      c: w.outAcc + s0 * headPad, ldc: headPad, accumulate: true, rowPad: nil)
            s0 += strip
        }
        j0 += cols
    }
    for r in 0..<rows {
        let l = w.rowSum[r]
        // l is 0 (all keys masked), positive, or NaN (a NaN score), which the output keeps.
        scaleRow(w.outAcc + r * headPad, headDim, l != 0 ? 1 / l : 0, into: out + r * ldo)
        lse?[r] = l != 0 ? Float(Double(w.rowMax[r]) / log2e) + Foundation.log(l) : -.infinity
    }
}

// MARK: - Row helpers

/// Adds the mask row, times maskScale, into s (if any) and returns the row maximum.
@inline(__always)
func maskedRowMax(_ s: UnsafeMutablePointer<Float>, _ n: Int, _ mask: UnsafePointer<Float>?, _ maskScale: Float = 1) -> Float {
    var m0 = F8(repeating: -.infinity), m1 = m0
    var j = 0
    if let mask {
        let f = F8(repeating: maskScale)
        while j + 8 <= n { let x = load8(s + j).addingProduct(load8(mask + j), f); store8(x, s + j); m0 = vmax(m0, x); j += 8 }
        var m = hmax(m0)
        while j < n { s[j] += mask[j] * maskScale; m = max(m, s[j]); j += 1 }
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

/// s[j] = 2^(s[j] − shift) for s[j] ≤ shift, rounded to bfloat16 when `bf16`; returns the sum of
/// the unrounded values.
@inline(__always)
func exp2ShiftedInPlace(_ s: UnsafeMutablePointer<Float>, _ n: Int, _ shift: Float, bf16: Bool) -> Float {
    let sv = F8(repeating: shift)
    var acc = F8()
    var j = 0
    while j + 8 <= n {
        let e = exp2NonPositive8(load8(s + j) - sv)
        store8(bf16 ? roundedProbabilitiesToBFloat16(e) : e, s + j)
        acc += e
        j += 8
    }
    if j < n {
        let e = exp2NonPositive8(loadPartial(s + j, n - j) - sv)
        storePartial(bf16 ? roundedProbabilitiesToBFloat16(e) : e, s + j, n - j)
        for i in 0..<(n - j) { acc[i] += e[i] }
    }
    return acc.sum()
}

@inline(__always)
func scaleRow(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ c: Float) {
    scaleRow(p, n, c, into: p)
}

/// dst[j] = c · src[j] for j < n.
@inline(__always)
func scaleRow(_ src: UnsafePointer<Float>, _ n: Int, _ c: Float, into dst: UnsafeMutablePointer<Float>) {
    var j = 0
    while j + 8 <= n { store8(load8(src + j) * c, dst + j); j += 8 }
    while j < n { dst[j] = src[j] * c; j += 1 }
}

