import Foundation

// The inside of the fused attention kernel: K and V packed once per head into the microkernel's
// panel layout, per-thread scratch, and the FlashAttention recurrence over one query block.
//
// Packing once per head (instead of once per query block) matters: K and V rows of one head are
// heads·headDim floats apart, often exactly a page, so re-reading them per query block was a page
// walk per row.

@inline(__always) func roundUp16(_ n: Int) -> Int { (n + 15) / 16 * 16 }
@inline(__always) func roundUp6(_ n: Int) -> Int { (n + 5) / 6 * 6 }

/// K and V of every (batch, head), packed:
///   Kᵀ: for each group of 16 keys, a contiguous [headDim × 16] panel (keys past lk are zero);
///   V:  for each group of 16 channels, a contiguous [lkPad × 16] panel (channels past headDim are zero).
struct PackedKeysValues {
    let base: UnsafeMutablePointer<Float>
    let lk, lkPad, headDim, headPad: Int

    /// Floats needed for `batch · heads` packed heads.
    static func count(batch: Int, heads: Int, lk: Int, headDim: Int) -> Int {
        batch * heads * roundUp16(max(lk, 1)) * (headDim + roundUp16(headDim))
    }

    /// Packs into `base`, which has room for `count(…)` floats.
    init(batch: Int, heads: Int, lk: Int, headDim: Int, k: UnsafePointer<Float>, ldk: Int,
         v: UnsafePointer<Float>, ldv: Int, into base: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        (self.lk, self.headDim, self.base) = (lk, headDim, base)
        lkPad = roundUp16(max(lk, 1))
        headPad = roundUp16(headDim)
        let perHead = lkPad * headDim + lkPad * headPad
        let groups = lkPad / microTileCols
        let (lkPad, headPad) = (lkPad, headPad)
        pool.parallelFor(batch * heads) { bh, _ in
            let b = bh / heads, h = bh % heads
            let kT = base + bh * perHead, vP = kT + lkPad * headDim
            let kSrc = k + b * lk * ldk + h * headDim, vSrc = v + b * lk * ldv + h * headDim
            for g in 0..<groups {
                packKeysTransposed(keys: min(microTileCols, max(0, lk - g * microTileCols)), headDim: headDim,
                                   src: kSrc + g * microTileCols * ldk, lds: ldk, dst: kT + g * microTileCols * headDim)
            }
            packValues(keys: lk, lkPad: lkPad, headDim: headDim, headPad: headPad, src: vSrc, lds: ldv, dst: vP)
        }
    }

    /// The packed K and V of head `bh` = b·heads + h.
    func head(_ bh: Int) -> PackedHead {
        let kT = base + bh * (lkPad * headDim + lkPad * headPad)
        return PackedHead(lk: lk, lkPad: lkPad, headDim: headDim, headPad: headPad, keysT: kT, values: kT + lkPad * headDim)
    }
}

struct PackedHead {
    var lk, lkPad, headDim, headPad: Int
    var keysT: UnsafePointer<Float>
    var values: UnsafePointer<Float>
}

/// Up to 16 keys [keys × headDim] (row stride lds) into one [headDim × 16] panel of Kᵀ, zero-filled.
@inline(__always)
func packKeysTransposed(keys: Int, headDim: Int, src: UnsafePointer<Float>, lds: Int, dst: UnsafeMutablePointer<Float>) {
    if keys < microTileCols { dst.update(repeating: 0, count: headDim * microTileCols) }
    for key in 0..<keys {
        let s = src + key * lds
        for d in 0..<headDim { dst[d * microTileCols + key] = s[d] }
    }
}

/// V [keys × headDim] (row stride lds) into headPad/16 panels of [lkPad × 16], zero-filled.
@inline(__always)
func packValues(keys: Int, lkPad: Int, headDim: Int, headPad: Int, src: UnsafePointer<Float>, lds: Int,
                dst: UnsafeMutablePointer<Float>) {
    for p in 0..<(headPad / microTileCols) {
        let c0 = p * microTileCols, width = min(microTileCols, headDim - c0)
        let panel = dst + p * microTileCols * lkPad
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
        (panel + keys * microTileCols).update(repeating: 0, count: (lkPad - keys) * microTileCols)
    }
}

// MARK: - Scratch

/// One thread's buffers for `attentionBlock`. Query rows are padded to the microkernel's 6-row
/// tiles with zeros, so every tile is a full one.
struct AttentionScratchViews {
    var keyBlock: Int
    var queries: UnsafeMutablePointer<Float>   // [queryRows × headDim], the query block, contiguous
    var scores: UnsafeMutablePointer<Float>    // [queryRows × keyBlock]
    var outAcc: UnsafeMutablePointer<Float>    // [queryRows × headPad]
    var rowMax: UnsafeMutablePointer<Float>    // [queryBlock]
    var rowSum: UnsafeMutablePointer<Float>    // [queryBlock]
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

    /// Sizes of the five per-thread buffers, each rounded to a cache line.
    static func layout(queryBlock: Int, keyBlock: Int, headDim: Int) -> [Int] {
        let rows = roundUp6(queryBlock)
        let sizes = [rows * headDim, rows * keyBlock, rows * roundUp16(headDim), queryBlock, queryBlock]
        return sizes.map { ($0 + 15) / 16 * 16 }
    }

    func views(_ worker: Int) -> AttentionScratchViews {
        var p = base + worker * perThread
        var parts: [UnsafeMutablePointer<Float>] = []
        for size in layout { parts.append(p); p += size }
        return AttentionScratchViews(keyBlock: keyBlock, queries: parts[0], scores: parts[1], outAcc: parts[2],
                                     rowMax: parts[3], rowSum: parts[4])
    }
}

// MARK: - One query block

/// One query block of one head against all its keys, FlashAttention-style: for each key block,
/// S = scale·Q·Kᵀ, an online-softmax update of the row max and sum, O += P·V; at the end O /= sum.
@inline(__always)
func attentionBlock(
    rows: Int, headDim: Int, q: UnsafePointer<Float>, ldq: Int, kv: PackedHead,
    out: UnsafeMutablePointer<Float>, ldo: Int, lse: UnsafeMutablePointer<Float>?, scale: Float,
    mask: UnsafePointer<Float>?, maskRowStride: Int, scratch w: AttentionScratchViews
) {
    let tileRows = roundUp6(rows), headPad = kv.headPad
    for r in 0..<rows { (w.queries + r * headDim).update(from: q + r * ldq, count: headDim) }
    (w.queries + rows * headDim).update(repeating: 0, count: (tileRows - rows) * headDim)
    w.rowMax.initialize(repeating: -.infinity, count: rows)
    w.rowSum.initialize(repeating: 0, count: rows)
    w.outAcc.initialize(repeating: 0, count: tileRows * headPad)
    var j0 = 0
    while j0 < kv.lk {
        let cols = min(w.keyBlock, kv.lk - j0)
        microGemm(m: tileRows, n: roundUp16(cols), k: headDim, alpha: scale, a: w.queries, lda: headDim,
                  b: kv.keysT + j0 * headDim, ldb: microTileCols, panelStride: microTileCols * headDim,
                  c: w.scores, ldc: w.keyBlock, accumulate: false, rowPad: nil)
        for r in 0..<rows {
            let s = w.scores + r * w.keyBlock
            let mOld = w.rowMax[r]
            let mNew = max(mOld, maskedRowMax(s, cols, mask.map { $0 + r * maskRowStride + j0 }))
            if mNew == -.infinity {
                // Every key so far is masked: contribute nothing.
                s.update(repeating: 0, count: cols)
                continue
            }
            let correction = Foundation.exp(mOld - mNew)
            w.rowSum[r] = w.rowSum[r] * correction + expShiftedInPlace(s, cols, mNew)
            if correction != 1 { scaleRow(w.outAcc + r * headPad, headDim, correction) }
            w.rowMax[r] = mNew
        }
        microGemm(m: tileRows, n: headPad, k: cols, alpha: 1, a: w.scores, lda: w.keyBlock,
                  b: kv.values + j0 * microTileCols, ldb: microTileCols, panelStride: microTileCols * kv.lkPad,
                  c: w.outAcc, ldc: headPad, accumulate: true, rowPad: nil)
        j0 += cols
    }
    for r in 0..<rows {
        let l = w.rowSum[r]
        let o = out + r * ldo
        o.update(from: w.outAcc + r * headPad, count: headDim)
        scaleRow(o, headDim, l > 0 ? 1 / l : 0)
        lse?[r] = l > 0 ? w.rowMax[r] + Foundation.log(l) : -.infinity
    }
}

// MARK: - Row helpers

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

