import ParaDiTTensor
import ParaDiTWeights

/// `WanAttention` as self-attention (`attn1`): fused q|k|v, RMS norm of q and k across all heads
/// (`qk_norm="rms_norm_across_heads"`), 3-axis RoPE on q and k, attention through the runtime, to_out.0.
public struct WanSelfAttention {
    let qkv: Linear, toOut: Linear
    let normQ: Tensor?, normK: Tensor?
    public let heads: Int, headDim: Int
    let eps: Float

    public init(_ w: Weights, dim: Int, heads: Int, qkNorm: Bool, eps: Float) throws {
        let headDim = dim / heads
        qkv = Linear.fused(try ["to_q", "to_k", "to_v"].map { try Linear(w.scope($0), in: dim, out: dim) })
        toOut = try Linear(w.scope("to_out").scope(0), in: dim, out: dim)
        normQ = qkNorm ? try w.tensor("norm_q.weight", shape: [dim]) : nil
        normK = qkNorm ? try w.tensor("norm_k.weight", shape: [dim]) : nil
        (self.heads, self.headDim, self.eps) = (heads, headDim, eps)
    }

    /// x: [B, L, dim] → [B, L, dim]; `rope` tables cover the L tokens held here.
    public func callAsFunction(_ x: Tensor, rope: RotaryTables, runtime: AttentionRuntime) throws -> Tensor {
        let dim = heads * headDim, p = qkv(x)
        let (q, k) = (p.columns(0..<dim), p.columns(dim..<(2 * dim)))
        // Across heads: one RMS over all `dim` channels of a token.
        if let normQ { rmsNormHeads(q, headDim: dim, weight: normQ, eps: eps) }
        if let normK { rmsNormHeads(k, headDim: dim, weight: normK, eps: eps) }
        applyRope(q, batch: x.size(0), headDim: headDim, cos: rope.cos, sin: rope.sin)
        applyRope(k, batch: x.size(0), headDim: headDim, cos: rope.cos, sin: rope.sin)
        return toOut(try attendQKV(p, heads: heads, headDim: headDim, precision: qkv.attentionPrecision,
                                   runtime: runtime))
    }
}

/// `WanAttention` as cross-attention (`attn2`) to the projected text: q from the video tokens, k|v
/// (fused) from the text, both RMS-normed across heads, no RoPE, no mask (the pipeline pads the
/// text with zero vectors). The text is whole on every rank: no communication.
public struct WanCrossAttention {
    let toQ: Linear, kv: Linear, toOut: Linear
    let normQ: Tensor?, normK: Tensor?
    public let heads: Int, headDim: Int
    let eps: Float

    public init(_ w: Weights, dim: Int, heads: Int, qkNorm: Bool, eps: Float) throws {
        toQ = try Linear(w.scope("to_q"), in: dim, out: dim)
        kv = Linear.fused(try ["to_k", "to_v"].map { try Linear(w.scope($0), in: dim, out: dim) })
        toOut = try Linear(w.scope("to_out").scope(0), in: dim, out: dim)
        normQ = qkNorm ? try w.tensor("norm_q.weight", shape: [dim]) : nil
        normK = qkNorm ? try w.tensor("norm_k.weight", shape: [dim]) : nil
        (self.heads, self.headDim, self.eps) = (heads, dim / heads, eps)
    }

    /// x: [B, L, dim], text: [B, Lt, dim] → [B, L, dim].
    public func callAsFunction(_ x: Tensor, text: Tensor) -> Tensor {
        let (b, l, dim) = (x.size(0), x.size(1), heads * headDim)
        let q = toQ(x), kvp = kv(text)
        if let normQ { rmsNormHeads(q.allColumns, headDim: dim, weight: normQ, eps: eps) }
        if let normK { rmsNormHeads(kvp.columns(0..<dim), headDim: dim, weight: normK, eps: eps) }
        let out = Tensor(uninitialized: [b, l, dim])
        attention(batch: b, heads: heads, headDim: headDim, q: q.allColumns, k: kvp.columns(0..<dim),
                  v: kvp.columns(dim..<(2 * dim)), out: out.allColumns, scale: 1 / Float(headDim).squareRoot(),
                  keyBias: nil, precision: toQ.attentionPrecision)
        return toOut(out)
    }
}

/// `WanTransformerBlock` (Wan 2.1 text-to-video): modulated self-attention with RoPE, cross-attention
/// to the text after an affine LayerNorm, modulated feed-forward; the six modulation chunks are the
/// model's timestep projection plus this block's `scale_shift_table`.
public struct WanTransformerBlock {
    let scaleShiftTable: Tensor
    let norm2: LayerNorm?
    let attn1: WanSelfAttention
    let attn2: WanCrossAttention
    let ffn: FeedForward
    let dim: Int, eps: Float

    public init(_ w: Weights, config c: WanConfig) throws {
        dim = c.innerDim
        eps = c.eps
        scaleShiftTable = try w.tensor("scale_shift_table", shape: [1, 6, dim]).reshaped([6, dim])
        norm2 = c.crossAttnNorm ? try LayerNorm(w.scope("norm2"), dim: dim, eps: c.eps, affine: true) : nil
        attn1 = try WanSelfAttention(w.scope("attn1"), dim: dim, heads: c.numAttentionHeads, qkNorm: c.qkNorm != nil,
                                     eps: c.eps)
        attn2 = try WanCrossAttention(w.scope("attn2"), dim: dim, heads: c.numAttentionHeads, qkNorm: c.qkNorm != nil,
                                      eps: c.eps)
        ffn = try FeedForward(w.scope("ffn"), dim: dim, inner: c.ffnDim, activation: "gelu-approximate")
    }

    /// What the self-attention reads: norm1's modulated x.
    public func modulatedInput(_ x: Tensor, timestepProjection: Tensor) -> Tensor {
        Modulation(addTable(scaleShiftTable, to: timestepProjection), dim: dim)
            .modulate(layerNorm(x, eps: eps), scale: 1, shift: 0)
    }

    /// Updates x: [B, L, dim] in place.
    public func callAsFunction(_ x: Tensor, timestepProjection: Tensor, text: Tensor, rope: RotaryTables,
                               runtime: AttentionRuntime) throws {
        // Chunks: 0 shift, 1 scale, 2 gate (attention); 3 shift, 4 scale, 5 gate (feed-forward).
        let mod = Modulation(addTable(scaleShiftTable, to: timestepProjection), dim: dim)
        mod.gatedAdd(x, gate: 2, try attn1(mod.modulate(layerNorm(x, eps: eps), scale: 1, shift: 0), rope: rope,
                                           runtime: runtime))
        addInPlace(x, attn2(norm2.map { $0(x) } ?? x, text: text))
        mod.gatedAdd(x, gate: 5, ffn(mod.modulate(layerNorm(x, eps: eps), scale: 4, shift: 3)))
    }
}
