import ParaDiTTensor
import ParaDiTWeights

/// diffusers `BasicTransformerBlock` with `norm_type="ada_norm_zero"` (DiT): adaLN-zero modulated
/// self-attention and MLP, each added back through a gate.
public struct AdaLNZeroTransformerBlock {
    public let norm1: AdaLayerNormZero
    let attn1: SelfAttention
    let norm3: LayerNorm
    let ff: FeedForward

    public init(_ w: Weights, dim: Int, heads: Int, headDim: Int, classes: Int, attentionBias: Bool,
                activation: String, normEps: Float, normAffine: Bool) throws {
        norm1 = try AdaLayerNormZero(w.scope("norm1"), dim: dim, classes: classes)
        attn1 = try SelfAttention(w.scope("attn1"), dim: dim, heads: heads, headDim: headDim, bias: attentionBias)
        norm3 = try LayerNorm(w.scope("norm3"), dim: dim, eps: normEps, affine: normAffine)
        ff = try FeedForward(w.scope("ff"), dim: dim, inner: 4 * dim, activation: activation)
    }

    /// What the attention reads: norm1's modulated x (TeaCache's signal).
    public func modulatedInput(_ x: Tensor, timesteps: [Float], labels: [Int]) -> Tensor {
        norm1.modulation(timesteps: timesteps, labels: labels).modulate(layerNorm(x, eps: 1e-6), scale: 1, shift: 0)
    }

    /// Updates x: [B, L, dim] in place.
    public func callAsFunction(_ x: Tensor, timesteps: [Float], labels: [Int], runtime: AttentionRuntime) throws {
        // Chunks: 0 shift_msa, 1 scale_msa, 2 gate_msa, 3 shift_mlp, 4 scale_mlp, 5 gate_mlp.
        let mod = norm1.modulation(timesteps: timesteps, labels: labels)
        let normed = mod.modulate(layerNorm(x, eps: 1e-6), scale: 1, shift: 0)
        mod.gatedAdd(x, gate: 2, try attn1(normed, runtime: runtime))
        mod.gatedAdd(x, gate: 5, ff(mod.modulate(norm3(x), scale: 4, shift: 3)))
    }
}
