import ParaDiTTensor
import ParaDiTWeights

/// diffusers `BasicTransformerBlock` with `norm_type="ada_norm_single"` and cross-attention
/// (PixArt-α/Σ): modulated self-attention, un-normalised cross-attention to the caption, modulated MLP.
public struct AdaLNSingleTransformerBlock {
    let scaleShiftTable: Tensor
    let norm1: LayerNorm, norm2: LayerNorm
    let attn1: SelfAttention
    let attn2: CrossAttention
    let ff: FeedForward
    let dim: Int

    public init(_ w: Weights, dim: Int, heads: Int, headDim: Int, crossAttentionDim: Int, attentionBias: Bool,
                activation: String, normEps: Float, normAffine: Bool) throws {
        scaleShiftTable = try w.tensor("scale_shift_table", shape: [6, dim])
        norm1 = try LayerNorm(w.scope("norm1"), dim: dim, eps: normEps, affine: normAffine)
        norm2 = try LayerNorm(w.scope("norm2"), dim: dim, eps: normEps, affine: normAffine)
        attn1 = try SelfAttention(w.scope("attn1"), dim: dim, heads: heads, headDim: headDim, bias: attentionBias)
        attn2 = try CrossAttention(w.scope("attn2"), dim: dim, contextDim: crossAttentionDim, heads: heads,
                                   headDim: headDim, bias: attentionBias)
        ff = try FeedForward(w.scope("ff"), dim: dim, inner: 4 * dim, activation: activation)
        self.dim = dim
    }

    /// Updates x: [B, L, dim] in place. `timestepChunks` is adaLN-single's [B, 6·dim] projection.
    /// What the self-attention reads: norm1's modulated x (TeaCache's signal).
    public func modulatedInput(_ x: Tensor, timestepChunks: Tensor) -> Tensor {
        Modulation(addTable(scaleShiftTable, to: timestepChunks), dim: dim).modulate(norm1(x), scale: 1, shift: 0)
    }

    public func callAsFunction(_ x: Tensor, timestepChunks: Tensor, caption: Tensor, captionBias: Tensor?,
                               runtime: AttentionRuntime) throws {
        // Chunks: 0 shift_msa, 1 scale_msa, 2 gate_msa, 3 shift_mlp, 4 scale_mlp, 5 gate_mlp.
        let mod = Modulation(addTable(scaleShiftTable, to: timestepChunks), dim: dim)
        mod.gatedAdd(x, gate: 2, try attn1(mod.modulate(norm1(x), scale: 1, shift: 0), runtime: runtime))
        let cross = attn2(x, context: caption, keyBias: captionBias)
        addInPlace(x, cross)
        mod.gatedAdd(x, gate: 5, ff(mod.modulate(norm2(x), scale: 4, shift: 3)))
    }
}
