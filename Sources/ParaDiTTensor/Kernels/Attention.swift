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
// K and V are first packed per head into the microkernel's panel layout (AttentionBlock.swift);
// both block products then run on that microkernel and the softmax between them is SIMD Swift.

/// An additive attention bias: element (b, i, j) at `data[b·batchStride + i·rowStride + j]`.
/// A stride of 0 broadcasts (rowStride 0: one key-padding row per sample). −inf masks a key.
public struct AttentionMask: @unchecked Sendable {
    public var data: UnsafePointer<Float>
    public var batchStride: Int
    public var rowStride: Int
    /// 0: one mask for every head; else a per-head bias (T5's relative positions).
    public var headStride: Int
    public init(data: UnsafePointer<Float>, batchStride: Int, rowStride: Int, headStride: Int = 0) {
        self.data = data
        self.batchStride = batchStride
        self.rowStride = rowStride
        self.headStride = headStride
    }
}

/// Block sizes of the fused kernel: `queryBlock` rows of Q against `keyBlock` keys at a time
/// (the key block is rounded up to a multiple of 16, the microkernel's panel width).
public struct AttentionBlocking: Sendable {
    public var queryBlock: Int
    public var keyBlock: Int
    public init(queryBlock: Int = 256, keyBlock: Int = 512) {
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
    scale: Float, mask: AttentionMask? = nil, precision: AttentionPrecision = .f32,
    blocking: AttentionBlocking = AttentionBlocking(), pool: ThreadPool = .current
) {
    if lq == 0 || batch == 0 || heads == 0 || headDim == 0 { return }
    // Large query blocks amortise each K/V panel over more rows, but every thread needs work:
    // shrink the block (in whole 6-row tiles) until there are two items per thread. Then split
    // the rows evenly into blocks of whole tiles, so only a head's last block pads its last tile.
    var bq = max(1, blocking.queryBlock)
    while bq > 24 && batch * heads * ((lq + bq - 1) / bq) < 2 * pool.threadCount { bq = roundUp6(bq / 2) }
    let blocks = (lq + bq - 1) / bq
    bq = roundUp6((lq + blocks - 1) / blocks)
    let bk = roundUp16(max(16, min(blocking.keyBlock, lk)))
    let qBlocks = (lq + bq - 1) / bq
    let packedCount = (PackedKeysValues.count(batch: batch, heads: heads, lk: lk, headDim: headDim) + 15) / 16 * 16
    let perThread = AttentionScratch.layout(queryBlock: bq, keyBlock: bk, headDim: headDim).reduce(0, +)
    pool.withWorkspace(count: packedCount + pool.threadCount * perThread) { workspace in
        let packed = PackedKeysValues(batch: batch, heads: heads, lk: lk, headDim: headDim, k: k, ldk: ldk,
                                      v: v, ldv: ldv, into: workspace, bf16: precision == .bf16, pool: pool)
        let scratch = AttentionScratch(queryBlock: bq, keyBlock: bk, headDim: headDim, base: workspace + packedCount)
        pool.parallelFor(batch * heads * qBlocks) { item, worker in
            let b = item / (heads * qBlocks), h = (item / qBlocks) % heads, i0 = (item % qBlocks) * bq
            attentionBlock(
                rows: min(bq, lq - i0), headDim: headDim, q: q + (b * lq + i0) * ldq + h * headDim, ldq: ldq,
                kv: packed.head(b * heads + h), out: out + (b * lq + i0) * ldo + h * headDim, ldo: ldo,
                lse: lse.map { $0 + (b * heads + h) * lq + i0 }, scale: scale, bf16: precision == .bf16,
                mask: mask.map { $0.data + b * $0.batchStride + h * $0.headStride + i0 * $0.rowStride }, maskRowStride: mask?.rowStride ?? 0,
                scratch: scratch.views(worker))
        }
    }
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
/// `bf16` rounds q, k, v and each P = 2^(log2(e)·s − M) to bfloat16 before its product, M the row
/// maximum of log2(e)·s rounded up to a whole number, as the kernel takes it.
public func attentionReference(
    batch: Int, heads: Int, lq: Int, lk: Int, headDim: Int,
    q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
    v: UnsafePointer<Float>, ldv: Int,
    out: UnsafeMutablePointer<Float>, ldo: Int, lse: UnsafeMutablePointer<Float>?,
    scale: Float, mask: AttentionMask? = nil, precision: AttentionPrecision = .f32
) {
    let bf16 = precision == .bf16, log2e = 1.4426950408889634
    func operand(_ x: Float) -> Double { Double(bf16 ? Float(bitPattern: UInt32(bfloat16Bits(x)) << 16) : x) }
    var s = [Double](repeating: 0, count: max(lk, 1)), p = s
    for b in 0..<batch { for h in 0..<heads { for i in 0..<lq {
        let qi = q + (b * lq + i) * ldq + h * headDim
        var m = -Double.infinity
        for j in 0..<lk {
            let kj = k + (b * lk + j) * ldk + h * headDim
            var dot = 0.0
            for d in 0..<headDim { dot += operand(qi[d]) * operand(kj[d]) }
            s[j] = dot * Double(scale) + Double(mask.map { $0.data[b * $0.batchStride + h * $0.headStride + i * $0.rowStride + j] } ?? 0)
            if s[j].isNaN || s[j] > m { m = s[j] }  // a NaN score makes the row NaN, as in PyTorch
        }
        // A row whose keys are all masked gives 0 (not PyTorch's NaN): ring and padded shards rely on it.
        var total = 0.0
        // In BF16 the shift is a whole power of two (m = M / log2 e), so P = e^(s − m) = 2^(log2(e)·s − M).
        if bf16 && m.isFinite { m = (m * log2e).rounded(.up) / log2e }
        if m != -.infinity {
            for j in 0..<lk {
                s[j] = Foundation.exp(s[j] - m); total += s[j]; p[j] = bf16 ? operand(Float(s[j])) : s[j]
            }
        }
        let o = out + (b * lq + i) * ldo + h * headDim
        for d in 0..<headDim {
            var acc = 0.0
            if total != 0 { for j in 0..<lk { acc += p[j] * operand(v[(b * lk + j) * ldv + h * headDim + d]) } }
            o[d] = total != 0 ? Float(acc / total) : 0
        }
        lse?[(b * heads + h) * lq + i] = total != 0 ? Float(m + Foundation.log(total)) : -.infinity
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

/// Attention over q, k, v: [B, L, heads·headDim] (token-major rows) with an additive score bias
/// [B|1, heads|1, Lq, Lk] (a causal mask, T5's relative position bias plus its key mask) → [B, Lq, heads·headDim].
public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Float, bias: Tensor) -> Tensor {
    let (b, lq, lk, width) = (q.size(0), q.size(1), k.size(1), q.size(2))
    check(q.rank == 3 && k.rank == 3 && k.shape == v.shape && k.size(0) == b && k.size(2) == width && width % heads == 0,
          "attention: q \(q.shape), k \(k.shape), v \(v.shape) for \(heads) heads")
    check(bias.rank == 4 && [1, b].contains(bias.size(0)) && [1, heads].contains(bias.size(1)) && bias.size(2) == lq && bias.size(3) == lk,
          "attention: bias \(bias.shape) is not [\(b)|1, \(heads)|1, \(lq), \(lk)]")
    let out = Tensor(uninitialized: [b, lq, width])
    let perHead = bias.size(1) == 1 ? 0 : lq * lk
    withExtendedLifetime((q, k, v, bias)) {
        attention(batch: b, heads: heads, lq: lq, lk: lk, headDim: width / heads, q: q.data, ldq: width, k: k.data, ldk: width,
                  v: v.data, ldv: width, out: out.data, ldo: width, lse: nil, scale: scale,
                  mask: AttentionMask(data: bias.data, batchStride: bias.size(0) == 1 ? 0 : bias.size(1) * lq * lk, rowStride: lk,
                                      headStride: perHead))
    }
    return out
}

/// Attention over strided views of token-major rows: q has `batch`·Lq rows, k and v `batch`·Lk,
/// each row holding `heads` heads of `headDim` (a fused q|k|v buffer is read in place); out gets
/// `batch`·Lq rows. `keyBias`: an additive [B, Lk] key mask (−inf drops a key), if any.
public func attention(batch: Int, heads: Int, headDim: Int, q: StridedView, k: StridedView, v: StridedView,
                      out: StridedView, scale: Float, keyBias: Tensor? = nil, precision: AttentionPrecision = .f32) {
    let width = heads * headDim
    check(batch > 0 && q.rows % batch == 0 && k.rows % batch == 0 && k.rows == v.rows && out.rows == q.rows,
          "attention: \(q.rows) query, \(k.rows) key, \(v.rows) value, \(out.rows) output rows over a batch of \(batch)")
    check(q.width == width && k.width == width && v.width == width && out.width == width,
          "attention: views of \(q.width), \(k.width), \(v.width), \(out.width) columns for \(heads) heads × \(headDim)")
    let (lq, lk) = (q.rows / batch, k.rows / batch)
    if let keyBias { check(keyBias.count == batch * lk, "attention: key bias \(keyBias.shape) is not [\(batch), \(lk)]") }
    withExtendedLifetime((q, k, v, out, keyBias)) {
        attention(batch: batch, heads: heads, lq: lq, lk: lk, headDim: headDim, q: q.data, ldq: q.rowStride,
                  k: k.data, ldk: k.rowStride, v: v.data, ldv: v.rowStride, out: out.data, ldo: out.rowStride, lse: nil,
                  scale: scale, mask: keyBias.map { AttentionMask(data: $0.data, batchStride: lk, rowStride: 0) },
                  precision: precision)
    }
}

/// `attention` on views that also writes each query row's log-sum-exp per head into
/// `lse` [batch, heads, Lq] (−inf for a row that sees no key), for merging partial results.
public func attention(batch: Int, heads: Int, headDim: Int, q: StridedView, k: StridedView, v: StridedView,
                      out: StridedView, lse: Tensor, scale: Float, precision: AttentionPrecision = .f32) {
    let width = heads * headDim
    check(batch > 0 && q.rows % batch == 0 && k.rows % batch == 0 && k.rows == v.rows && out.rows == q.rows
          && q.width == width && k.width == width && v.width == width && out.width == width && lse.count >= heads * q.rows,
          "attention: \(q.rows)×\(q.width) queries, \(k.rows)×\(k.width) keys, lse of \(lse.count) for \(batch)×\(heads) heads")
    withExtendedLifetime((q, k, v, out, lse)) {
        attention(batch: batch, heads: heads, lq: q.rows / batch, lk: k.rows / batch, headDim: headDim, q: q.data, ldq: q.rowStride,
                  k: k.data, ldk: k.rowStride, v: v.data, ldv: v.rowStride, out: out.data, ldo: out.rowStride,
                  lse: lse.data, scale: scale, precision: precision)
    }
}

/// Merges a partial result over another set of keys into `out` (views of `batch`·Lq rows of
/// heads·headDim) through the log-sum-exps [batch, heads, Lq]: exact, as if one call had seen both.
public func attentionMerge(batch: Int, heads: Int, headDim: Int, out: StridedView, lse: Tensor, part: StridedView, partLse: Tensor) {
    check(batch > 0 && out.rows == part.rows && out.rows % batch == 0 && out.width == heads * headDim && part.width == out.width
          && lse.count >= heads * out.rows && partLse.count >= heads * out.rows, "attentionMerge: \(out.rows)×\(out.width) with \(part.rows)×\(part.width)")
    withExtendedLifetime((out, lse, part, partLse)) {
        attentionMerge(batch: batch, heads: heads, lq: out.rows / batch, headDim: headDim, out: out.data, ldo: out.rowStride,
                       lse: lse.data, part: part.data, ldp: part.rowStride, partLse: partLse.data)
    }
}
