import ParaDiTTensor
import ParaDiTWeights

/// diffusers `JointTransformerBlock` (MMDiT, SD3/SD3.5): image and context streams with their own
/// adaLN-zero modulation and MLPs, one joint attention; optionally a second, image-only attention
/// (SD3.5 `dual_attention_layers`); the last block only reads the context (`context_pre_only`).
/// `FluxTransformerBlock` is the same block with the text first in the joint sequence and RoPE.
public struct JointTransformerBlock {
    let norm1: AdaLNProjection, norm1Context: AdaLNProjection
    let attn: JointAttention, attn2: JointAttention?
    let ff: FeedForward, ffContext: FeedForward?
    public let contextPreOnly: Bool

    public init(_ w: Weights, dim: Int, heads: Int, headDim: Int, contextPreOnly: Bool, qkNorm: Bool, dualAttention: Bool,
                contextFirst: Bool = false) throws {
        norm1 = try AdaLNProjection(w.scope("norm1"), dim: dim, chunks: dualAttention ? 9 : 6)
        norm1Context = try AdaLNProjection(w.scope("norm1_context"), dim: dim, chunks: contextPreOnly ? 2 : 6)
        attn = try JointAttention(w.scope("attn"), dim: dim, heads: heads, headDim: headDim, withContext: true,
                                  contextPreOnly: contextPreOnly, qkNorm: qkNorm, contextFirst: contextFirst)
        attn2 = dualAttention ? try JointAttention(w.scope("attn2"), dim: dim, heads: heads, headDim: headDim,
                                                   withContext: false, contextPreOnly: false, qkNorm: qkNorm) : nil
        ff = try FeedForward(w.scope("ff"), dim: dim, inner: 4 * dim, activation: "gelu-approximate")
        ffContext = contextPreOnly ? nil : try FeedForward(w.scope("ff_context"), dim: dim, inner: 4 * dim, activation: "gelu-approximate")
        self.contextPreOnly = contextPreOnly
    }

    /// Updates x [B, L, dim] and context [B, Lc, dim] in place (context is left as is in the last block).
    /// What the joint attention reads of the image stream: norm1's modulated x (TeaCache's signal).
    public func modulatedInput(_ x: Tensor, temb: Tensor) -> Tensor {
        norm1(temb).modulate(layerNorm(x, eps: 1e-6), scale: 1, shift: 0)
    }

    public func callAsFunction(_ x: Tensor, context: Tensor, temb: Tensor, rope: RotaryTables? = nil, runtime: AttentionRuntime) throws {
        // Image chunks: 0 shift_msa, 1 scale_msa, 2 gate_msa, 3 shift_mlp, 4 scale_mlp, 5 gate_mlp
        // (+ 6 shift_msa2, 7 scale_msa2, 8 gate_msa2 with dual attention).
        let mod = norm1(temb), cmod = norm1Context(temb)
        let normed = layerNorm(x, eps: 1e-6)
        // Context: AdaLayerNormContinuous (scale, shift) in the last block, else adaLN-zero.
        let normedContext = contextPreOnly ? cmod.modulate(layerNorm(context, eps: 1e-6), scale: 0, shift: 1)
                                           : cmod.modulate(layerNorm(context, eps: 1e-6), scale: 1, shift: 0)
        let (attnOut, contextOut) = try attn(mod.modulate(normed, scale: 1, shift: 0), context: normedContext, rope: rope, runtime: runtime)
        mod.gatedAdd(x, gate: 2, attnOut)
        if let attn2 {
            mod.gatedAdd(x, gate: 8, try attn2(mod.modulate(normed, scale: 7, shift: 6), context: nil, runtime: runtime).0)
        }
        mod.gatedAdd(x, gate: 5, ff(mod.modulate(layerNorm(x, eps: 1e-6), scale: 4, shift: 3)))
        guard let contextOut, let ffContext else { return }
        cmod.gatedAdd(context, gate: 2, contextOut)
        cmod.gatedAdd(context, gate: 5, ffContext(cmod.modulate(layerNorm(context, eps: 1e-6), scale: 4, shift: 3)))
    }
}
