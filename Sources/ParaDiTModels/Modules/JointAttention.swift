import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// diffusers `Attention` in its joint (MMDiT) form: image tokens through to_q/to_k/to_v, context
/// tokens through add_q_proj/add_k_proj/add_v_proj, optional RMS qk-norm on each, one attention
/// over both sequences, then to_out.0 for the image part and to_add_out for the context part
/// (absent in a `context_pre_only` block). `attn2` of SD3.5 blocks is the same without context;
/// Flux's single-stream blocks have no to_out (`imageOut: false`): their caller projects.
public struct JointAttention {
    let qkv: Linear, addQKV: Linear?
    let toOut: Linear?, toAddOut: Linear?
    let normQ: Tensor?, normK: Tensor?, normAddedQ: Tensor?, normAddedK: Tensor?
    public let heads: Int, headDim: Int
    /// Whether the context tokens come before the image tokens in the joint sequence (Flux) or after (SD3).
    let contextFirst: Bool
    let eps: Float

    public init(_ w: Weights, dim: Int, heads: Int, headDim: Int, withContext: Bool, contextPreOnly: Bool,
                qkNorm: Bool, contextFirst: Bool = false, imageOut: Bool = true, eps: Float = 1e-6) throws {
        let inner = heads * headDim
        qkv = Linear.fused(try ["to_q", "to_k", "to_v"].map { try Linear(w.scope($0), in: dim, out: inner) })
        addQKV = withContext ? Linear.fused(try ["add_q_proj", "add_k_proj", "add_v_proj"].map { try Linear(w.scope($0), in: dim, out: inner) }) : nil
        toOut = imageOut ? try Linear(w.scope("to_out").scope(0), in: inner, out: dim) : nil
        toAddOut = withContext && !contextPreOnly ? try Linear(w.scope("to_add_out"), in: inner, out: dim) : nil
        normQ = qkNorm ? try w.tensor("norm_q.weight", shape: [headDim]) : nil
        normK = qkNorm ? try w.tensor("norm_k.weight", shape: [headDim]) : nil
        normAddedQ = qkNorm && withContext ? try w.tensor("norm_added_q.weight", shape: [headDim]) : nil
        normAddedK = qkNorm && withContext ? try w.tensor("norm_added_k.weight", shape: [headDim]) : nil
        (self.heads, self.headDim, self.contextFirst, self.eps) = (heads, headDim, contextFirst, eps)
    }

    /// Projects x [B, L, dim] into rows [q | k | v] of the joint buffer at token offset `at`, with qk-norm.
    func project(_ x: Tensor, _ proj: Linear, normQ: Tensor?, normK: Tensor?, into joint: Tensor, at: Int) {
        let inner = heads * headDim
        let p = proj(x)
        if let normQ { rmsNormHeads(p.columns(0..<inner), headDim: headDim, weight: normQ, eps: eps) }
        if let normK { rmsNormHeads(p.columns(inner..<(2 * inner)), headDim: headDim, weight: normK, eps: eps) }
        copySequence(p, into: joint, at: at)
    }

    /// The joint q|k|v buffer [B, Limg + Lctx, 3·inner] (context first or last), qk-normed, and
    /// rotated by `rope` (cos, sin tables [Limg + Lctx, headDim] in joint order) if given.
    public func jointQKV(_ x: Tensor, context: Tensor?, rope: RotaryTables? = nil) -> Tensor {
        let lc = context?.size(1) ?? 0, l = x.size(1), inner = heads * headDim
        let joint = Tensor(uninitialized: [x.size(0), l + lc, 3 * inner])
        project(x, qkv, normQ: normQ, normK: normK, into: joint, at: contextFirst ? lc : 0)
        if let context, let addQKV {
            project(context, addQKV, normQ: normAddedQ, normK: normAddedK, into: joint, at: contextFirst ? 0 : l)
        }
        if let rope {
            check(rope.cos.size(0) == l + lc, "RoPE tables cover \(rope.cos.size(0)) tokens, the joint sequence has \(l + lc)")
            for columns in [0..<inner, inner..<(2 * inner)] {
                applyRope(joint.columns(columns), batch: x.size(0), headDim: headDim, cos: rope.cos, sin: rope.sin)
            }
        }
        return joint
    }

    /// Attention over a joint q|k|v buffer → [B, L, inner] (before any output projection);
    /// `text`: the rows that hold text tokens.
    public func attend(_ joint: Tensor, text: Range<Int>? = nil, runtime: AttentionRuntime) throws -> Tensor {
        try attendQKV(joint, heads: heads, headDim: headDim, text: text, precision: qkv.attentionPrecision,
                      runtime: runtime)
    }

    /// (image output [B, L, dim], context output [B, Lc, dim] or nil).
    public func callAsFunction(_ x: Tensor, context: Tensor?, rope: RotaryTables? = nil, runtime: AttentionRuntime) throws -> (Tensor, Tensor?) {
        let (l, lc) = (x.size(1), context?.size(1) ?? 0)
        let text = context == nil ? nil : contextFirst ? 0..<lc : l..<(l + lc)
        let out = try attend(jointQKV(x, context: context, rope: rope), text: text, runtime: runtime)
        guard context != nil else { return (toOut.map { $0(out) } ?? out, nil) }
        let image = sliceSequence(out, contextFirst ? lc..<(lc + l) : 0..<l)
        let ctx = sliceSequence(out, contextFirst ? 0..<lc : l..<(l + lc))
        return (toOut.map { $0(image) } ?? image, toAddOut.map { $0(ctx) })
    }
}

/// RoPE cos and sin tables [tokens, headDim] (see `ropeFrequencies`).
public struct RotaryTables {
    public var cos: Tensor, sin: Tensor
}
