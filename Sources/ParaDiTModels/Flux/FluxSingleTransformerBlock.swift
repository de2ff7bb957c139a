import ParaDiTTensor
import ParaDiTWeights

/// diffusers `FluxSingleTransformerBlock`: one stream over [text; image] tokens; attention (no
/// output projection) and a GELU MLP run side by side and are projected together by proj_out.
public struct FluxSingleTransformerBlock {
    let norm: AdaLNProjection
    let attn: JointAttention
    let projMLP: Linear, projOut: Linear
    let dim: Int

    public init(_ w: Weights, dim: Int, heads: Int, headDim: Int, mlpRatio: Int = 4) throws {
        norm = try AdaLNProjection(w.scope("norm"), dim: dim, chunks: 3)
        attn = try JointAttention(w.scope("attn"), dim: dim, heads: heads, headDim: headDim, withContext: false,
                                  contextPreOnly: false, qkNorm: true, imageOut: false)
        projMLP = try Linear(w.scope("proj_mlp"), in: dim, out: mlpRatio * dim)
        projOut = try Linear(w.scope("proj_out"), in: dim + mlpRatio * dim, out: dim)
        self.dim = dim
    }

    /// Updates x [B, Lt + Li, dim] (the first `textTokens` rows text) in place.
    public func callAsFunction(_ x: Tensor, textTokens: Int, temb: Tensor, rope: RotaryTables, runtime: AttentionRuntime) throws {
        // Chunks: 0 shift, 1 scale, 2 gate.
        let mod = norm(temb)
        let normed = mod.modulate(layerNorm(x, eps: 1e-6), scale: 1, shift: 0)
        let mlp = gelu(projMLP(normed), approximation: .tanh)
        let attnOut = try attn.attend(attn.jointQKV(normed, context: nil, rope: rope), text: 0..<textTokens, runtime: runtime)
        // proj_out(cat([attn, mlp], dim=2)).
        mod.gatedAdd(x, gate: 2, projOut(concatFeatures([attnOut, mlp])))
    }
}
