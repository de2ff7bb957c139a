import ParaDiTTensor
import ParaDiTWeights

/// `CombinedTimestepTextProjEmbeddings` (SD3, Flux-schnell) and, with a guidance embedder,
/// `CombinedTimestepGuidanceTextProjEmbeddings` (Flux-dev): timestep (+ guidance) embedding plus
/// the projected pooled text embedding.
public struct CombinedTimestepTextProjEmbeddings {
    let timeProj = Timesteps(channels: 256, flipSinToCos: true, downscaleFreqShift: 0)
    let timestepEmbedder: TimestepEmbedding
    let guidanceEmbedder: TimestepEmbedding?
    let textEmbedder: PixArtAlphaTextProjection

    public init(_ w: Weights, dim: Int, pooledDim: Int, guidance: Bool = false) throws {
        timestepEmbedder = try TimestepEmbedding(w.scope("timestep_embedder"), in: 256, dim: dim)
        guidanceEmbedder = guidance ? try TimestepEmbedding(w.scope("guidance_embedder"), in: 256, dim: dim) : nil
        textEmbedder = try PixArtAlphaTextProjection(w.scope("text_embedder"), in: pooledDim, hidden: dim, siLU: true)
    }

    public var usesGuidance: Bool { guidanceEmbedder != nil }

    /// timesteps [B], pooled [B, pooledDim], guidance [B] (Flux-dev) → [B, dim].
    public func callAsFunction(timesteps: [Float], pooled: Tensor, guidance: [Float] = []) -> Tensor {
        var t = timestepEmbedder(timeProj(timesteps))
        if let guidanceEmbedder { t = t + guidanceEmbedder(timeProj(guidance)) }
        return t + textEmbedder(pooled)
    }
}
