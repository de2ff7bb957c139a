import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// diffusers `Attention` as self-attention (`attn1` of `BasicTransformerBlock`): to_q, to_k, to_v
/// fused into one projection, attention through the runtime, then to_out.0.
public struct SelfAttention {
    let qkv: Linear
    let toOut: Linear
    public let heads: Int, headDim: Int

    public init(_ w: Weights, dim: Int, heads: Int, headDim: Int, bias: Bool, outBias: Bool = true) throws {
        let inner = heads * headDim
        qkv = Linear.fused(try ["to_q", "to_k", "to_v"].map { try Linear(w.scope($0), in: dim, out: inner, bias: bias) })
        toOut = try Linear(w.scope("to_out").scope(0), in: inner, out: dim, bias: outBias)
        self.heads = heads
        self.headDim = headDim
    }

    /// x: [B, L, dim] → [B, L, dim].
    public func callAsFunction(_ x: Tensor, runtime: AttentionRuntime) throws -> Tensor {
        toOut(try attendQKV(qkv(x), heads: heads, headDim: headDim, precision: qkv.attentionPrecision,
                            runtime: runtime))
    }
}

/// Self-attention over a token-major q|k|v buffer [B, L, 3·heads·headDim] (as a fused projection
/// writes it), through the runtime → [B, L, heads·headDim]. `text`: the rows holding text tokens.
func attendQKV(_ qkv: Tensor, heads: Int, headDim: Int, text: Range<Int>? = nil, precision: AttentionPrecision,
               runtime: AttentionRuntime) throws -> Tensor {
    let b = qkv.size(0), l = qkv.size(1), inner = heads * headDim
    let out = Tensor(uninitialized: [b, l, inner])
    try runtime.attention(AttentionCall(
        batch: b, heads: heads, headDim: headDim, queryTokens: l, keyTokens: l,
        q: qkv.columns(0..<inner), k: qkv.columns(inner..<(2 * inner)), v: qkv.columns((2 * inner)..<(3 * inner)),
        out: out.allColumns, scale: 1 / Float(headDim).squareRoot(), keyMask: nil, textTokens: text,
        precision: precision))
    return out
}

/// diffusers `FeedForward` with a GELU projection: net.0.proj → GELU → net.2.
public struct FeedForward {
    let proj: Linear, out: Linear
    let approximation: GELUApproximation

    public init(_ w: Weights, dim: Int, inner: Int, activation: String, bias: Bool = true) throws {
        switch activation {
        case "gelu-approximate": approximation = .tanh
        case "gelu": approximation = .none
        default: throw WeightsError.badConfig(path: "config.json", reason: "activation_fn \"\(activation)\" is not supported (gelu, gelu-approximate)")
        }
        proj = try Linear(w.scope("net").scope(0).scope("proj"), in: dim, out: inner, bias: bias)
        out = try Linear(w.scope("net").scope(2), in: inner, out: dim, bias: bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { out(gelu(proj(x), approximation: approximation)) }
}

/// diffusers `Attention` as cross-attention (`attn2` of PixArt's blocks): queries from the image
/// tokens, keys and values (fused) from the caption. The caption is whole on every rank, so this
/// needs no communication and calls the fused kernel directly.
public struct CrossAttention {
    let toQ: Linear, kv: Linear, toOut: Linear
    public let heads: Int, headDim: Int

    public init(_ w: Weights, dim: Int, contextDim: Int, heads: Int, headDim: Int, bias: Bool) throws {
        let inner = heads * headDim
        toQ = try Linear(w.scope("to_q"), in: dim, out: inner, bias: bias)
        kv = Linear.fused(try ["to_k", "to_v"].map { try Linear(w.scope($0), in: contextDim, out: inner, bias: bias) })
        toOut = try Linear(w.scope("to_out").scope(0), in: inner, out: dim)
        self.heads = heads
        self.headDim = headDim
    }

    /// x: [B, L, dim], context: [B, Lc, contextDim], keyBias: additive [B, Lc] or nil → [B, L, dim].
    public func callAsFunction(_ x: Tensor, context: Tensor, keyBias: Tensor?) -> Tensor {
        let (b, l) = (x.size(0), x.size(1)), inner = heads * headDim
        let q = toQ(x), kvp = kv(context)
        let out = Tensor(uninitialized: [b, l, inner])
        attention(batch: b, heads: heads, headDim: headDim, q: q.allColumns, k: kvp.columns(0..<inner),
                  v: kvp.columns(inner..<(2 * inner)), out: out.allColumns, scale: 1 / Float(headDim).squareRoot(),
                  keyBias: keyBias, precision: toQ.attentionPrecision)
        return toOut(out)
    }
}
