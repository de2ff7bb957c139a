import ParaDiTTensor
import ParaDiTWeights

/// `PixArtAlphaCombinedTimestepSizeEmbeddings`: timestep embedding, plus resolution and aspect-ratio
/// embeddings (each dim/3 wide) when the model uses additional conditions (PixArt-α 1024).
public struct PixArtAlphaCombinedTimestepSizeEmbeddings {
    let timeProj = Timesteps(channels: 256, flipSinToCos: true, downscaleFreqShift: 0)
    let timestepEmbedder: TimestepEmbedding
    let resolutionEmbedder: TimestepEmbedding?, aspectRatioEmbedder: TimestepEmbedding?

    public init(_ w: Weights, dim: Int, additionalConditions: Bool) throws {
        timestepEmbedder = try TimestepEmbedding(w.scope("timestep_embedder"), in: 256, dim: dim)
        resolutionEmbedder = additionalConditions ? try TimestepEmbedding(w.scope("resolution_embedder"), in: 256, dim: dim / 3) : nil
        aspectRatioEmbedder = additionalConditions ? try TimestepEmbedding(w.scope("aspect_ratio_embedder"), in: 256, dim: dim / 3) : nil
    }

    public var usesAdditionalConditions: Bool { resolutionEmbedder != nil }

    /// resolution: [B·2] (height, width per sample), aspectRatio: [B] — only with additional conditions.
    public func callAsFunction(timesteps: [Float], resolution: [Float], aspectRatio: [Float]) -> Tensor {
        let t = timestepEmbedder(timeProj(timesteps))
        guard let resolutionEmbedder, let aspectRatioEmbedder else { return t }
        let b = timesteps.count, third = resolutionEmbedder.linear2.outFeatures
        let res = resolutionEmbedder(timeProj(resolution)).reshaped([b, 2 * third])
        let ar = aspectRatioEmbedder(timeProj(aspectRatio))
        return t + concatFeatures([res, ar])
    }
}

/// `AdaLayerNormSingle`: one timestep embedding for the whole model, projected to six chunks
/// that every block adds to its own `scale_shift_table`.
public struct AdaLayerNormSingle {
    let emb: PixArtAlphaCombinedTimestepSizeEmbeddings
    let linear: Linear

    public init(_ w: Weights, dim: Int, additionalConditions: Bool) throws {
        emb = try PixArtAlphaCombinedTimestepSizeEmbeddings(w.scope("emb"), dim: dim, additionalConditions: additionalConditions)
        linear = try Linear(w.scope("linear"), in: dim, out: 6 * dim)
    }

    /// (the six-chunk projection [B, 6·dim], the embedded timestep [B, dim]).
    public func callAsFunction(timesteps: [Float], resolution: [Float], aspectRatio: [Float]) -> (Tensor, Tensor) {
        let embedded = emb(timesteps: timesteps, resolution: resolution, aspectRatio: aspectRatio)
        return (linear(silu(embedded)), embedded)
    }
}

/// `PixArtAlphaTextProjection`: linear_1 → GELU(tanh) (or SiLU) → linear_2.
public struct PixArtAlphaTextProjection {
    let linear1: Linear, linear2: Linear
    let useSiLU: Bool

    public init(_ w: Weights, in inFeatures: Int, hidden: Int, out: Int? = nil, siLU: Bool = false) throws {
        linear1 = try Linear(w.scope("linear_1"), in: inFeatures, out: hidden)
        linear2 = try Linear(w.scope("linear_2"), in: hidden, out: out ?? hidden)
        useSiLU = siLU
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = linear1(x)
        return linear2(useSiLU ? silu(h) : gelu(h, approximation: .tanh))
    }
}

/// Adds a [chunks, dim] table to every sample's [chunks·dim] modulation row: `table[None] + emb`.
func addTable(_ table: Tensor, to values: Tensor) -> Tensor {
    let out = values.copy()
    addBroadcast(into: out, table)
    return out
}
