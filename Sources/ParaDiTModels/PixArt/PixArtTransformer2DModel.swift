import ParaDiTTensor
import ParaDiTWeights

/// `config.json` of `PixArtTransformer2DModel` (PixArt-α and Σ), with diffusers' defaults.
public struct PixArtConfig: Decodable, Sendable {
    public var numAttentionHeads, attentionHeadDim, inChannels, numLayers, sampleSize, patchSize: Int
    public var outChannels: Int?
    public var crossAttentionDim: Int?
    public var attentionBias: Bool
    public var activationFn, normType: String
    public var normElementwiseAffine: Bool
    public var normEps: Float
    public var interpolationScale: Float?
    public var useAdditionalConditions: Bool?
    public var captionChannels: Int?

    enum CodingKeys: String, CodingKey {
        case numAttentionHeads, attentionHeadDim, inChannels, numLayers, sampleSize, patchSize, outChannels
        case crossAttentionDim, attentionBias, activationFn, normType, normElementwiseAffine, normEps
        case interpolationScale, useAdditionalConditions, captionChannels
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        numAttentionHeads = try c.value(.numAttentionHeads, default: 16)
        attentionHeadDim = try c.value(.attentionHeadDim, default: 72)
        inChannels = try c.value(.inChannels, default: 4)
        outChannels = try c.value(.outChannels, default: 8)
        numLayers = try c.value(.numLayers, default: 28)
        crossAttentionDim = try c.value(.crossAttentionDim, default: 1152)
        attentionBias = try c.value(.attentionBias, default: true)
        sampleSize = try c.value(.sampleSize, default: 128)
        patchSize = try c.value(.patchSize, default: 2)
        activationFn = try c.value(.activationFn, default: "gelu-approximate")
        normType = try c.value(.normType, default: "ada_norm_single")
        normElementwiseAffine = try c.value(.normElementwiseAffine, default: false)
        normEps = try c.value(.normEps, default: 1e-6)
        interpolationScale = try c.decodeIfPresent(Float.self, forKey: .interpolationScale)
        useAdditionalConditions = try c.decodeIfPresent(Bool.self, forKey: .useAdditionalConditions)
        captionChannels = try c.decodeIfPresent(Int.self, forKey: .captionChannels)
    }

    public var innerDim: Int { numAttentionHeads * attentionHeadDim }
    public var outputChannels: Int { outChannels ?? inChannels }
    /// diffusers: on by default only for the 1024-px checkpoints (sample_size 128).
    public var additionalConditions: Bool { useAdditionalConditions ?? (sampleSize == 128) }
    public var positionInterpolationScale: Float { interpolationScale ?? Float(max(sampleSize / 64, 1)) }
}

/// The inputs of one PixArt forward pass, named as diffusers' `forward()` arguments
/// (`resolution` and `aspect_ratio` are the keys of `added_cond_kwargs`).
public struct PixArtInputs {
    public var hiddenStates: Tensor
    public var encoderHiddenStates: Tensor
    public var timestep: [Float]
    /// [B, Lt] of 1 (keep) and 0 (drop), if given.
    public var encoderAttentionMask: Tensor?
    public var resolution: [Float] = []
    public var aspectRatio: [Float] = []

    public init(hiddenStates: Tensor, encoderHiddenStates: Tensor, timestep: [Float], encoderAttentionMask: Tensor?,
                resolution: [Float] = [], aspectRatio: [Float] = []) {
        (self.hiddenStates, self.encoderHiddenStates, self.timestep) = (hiddenStates, encoderHiddenStates, timestep)
        (self.encoderAttentionMask, self.resolution, self.aspectRatio) = (encoderAttentionMask, resolution, aspectRatio)
    }
}

/// `PixArtTransformer2DModel`: adaLN-single blocks with cross-attention to T5 caption embeddings.
public final class PixArtTransformer2DModel: SingleStreamTransformer {
    public let config: PixArtConfig
    let posEmbed: PatchEmbed
    let adalnSingle: AdaLayerNormSingle
    let captionProjection: PixArtAlphaTextProjection?
    public let transformerBlocks: [AdaLNSingleTransformerBlock]
    let scaleShiftTable: Tensor
    let projOut: Linear

    public init(config: PixArtConfig, weights w: Weights) throws {
        compute = w.compute
        guard config.normType == "ada_norm_single" else {
            throw WeightsError.badConfig(path: "config.json", reason: "norm_type \"\(config.normType)\": PixArtTransformer2DModel supports only ada_norm_single")
        }
        self.config = config
        let dim = config.innerDim
        posEmbed = try PatchEmbed(w.scope("pos_embed"), inChannels: config.inChannels, dim: dim, patchSize: config.patchSize,
                                  sampleSize: config.sampleSize, interpolationScale: config.positionInterpolationScale)
        adalnSingle = try AdaLayerNormSingle(w.scope("adaln_single"), dim: dim, additionalConditions: config.additionalConditions)
        captionProjection = try config.captionChannels.map {
            try PixArtAlphaTextProjection(w.scope("caption_projection"), in: $0, hidden: dim)
        }
        transformerBlocks = try (0..<config.numLayers).map { i in
            try AdaLNSingleTransformerBlock(w.scope("transformer_blocks").scope(i), dim: dim, heads: config.numAttentionHeads,
                                            headDim: config.attentionHeadDim, crossAttentionDim: config.crossAttentionDim ?? dim,
                                            attentionBias: config.attentionBias, activation: config.activationFn,
                                            normEps: config.normEps, normAffine: config.normElementwiseAffine)
        }
        scaleShiftTable = try w.tensor("scale_shift_table", shape: [2, dim])
        projOut = try Linear(w.scope("proj_out"), in: dim, out: config.patchSize * config.patchSize * config.outputChannels)
    }

    /// State shared by every block of one forward pass.
    public struct Conditioning {
        public var timestepChunks: Tensor, embeddedTimestep: Tensor
        public var caption: Tensor, captionBias: Tensor?
    }

    /// State between blocks: the hidden states and the conditioning.
    public struct State: SingleStreamState {
        public var hidden: Tensor
        public var conditioning: Conditioning
    }

    public var className: String { "PixArtTransformer2DModel" }
    public let compute: ComputeDType
    public var blockCount: Int { transformerBlocks.count }

    public func problem(_ inputs: PixArtInputs) throws -> TransformerProblem {
        try expectDim("hidden_states", "channels", inputs.hiddenStates.size(1), config.inChannels)
        try expectDim("encoder_hidden_states", "channels", inputs.encoderHiddenStates.size(2),
                      config.captionChannels ?? config.crossAttentionDim ?? config.innerDim)
        let b = inputs.batch
        if config.additionalConditions {
            guard inputs.resolution.count == 2 * b, inputs.aspectRatio.count == b else {
                throw WeightsError.badInput(name: "resolution", reason: "this PixArt model needs resolution [\(b), 2] and aspect_ratio [\(b), 1] (added_cond_kwargs)")
            }
        }
        let grid = try TokenLayout.patches(latentHeight: inputs.hiddenStates.size(2), latentWidth: inputs.hiddenStates.size(3),
                                           patchSize: config.patchSize)
        return TransformerProblem(batch: b, heads: config.numAttentionHeads, headDim: config.attentionHeadDim, grid: grid,
                                  attentionLayers: config.numLayers)
    }

    // MARK: embed → blocks → head

    public func embed(_ inputs: PixArtInputs, layout: TokenLayout) throws -> State {
        let (chunks, embedded) = adalnSingle(timesteps: inputs.timestep, resolution: inputs.resolution, aspectRatio: inputs.aspectRatio)
        let caption = captionProjection.map { $0(inputs.encoderHiddenStates) } ?? inputs.encoderHiddenStates
        // diffusers turns a 0/1 keep-mask into the additive bias (1 − mask)·(−10000).
        let bias = inputs.encoderAttentionMask.map { m in Tensor(shape: m.shape, values: m.scalars.map { (1 - $0) * -10000 }) }
        return State(hidden: try posEmbed(inputs.hiddenStates, layout: layout),
                     conditioning: Conditioning(timestepChunks: chunks, embeddedTimestep: embedded, caption: caption, captionBias: bias))
    }

    public func modulatedInput(_ s: State) -> Tensor? {
        transformerBlocks[0].modulatedInput(s.hidden, timestepChunks: s.conditioning.timestepChunks)
    }

    public func block(_ i: Int, _ s: inout State, attention: AttentionRuntime) throws {
        let c = s.conditioning
        try transformerBlocks[i](s.hidden, timestepChunks: c.timestepChunks, caption: c.caption, captionBias: c.captionBias,
                                 runtime: attention)
    }

    /// [B, tokens here, patch²·out_channels].
    public func head(_ s: State) -> Tensor {
        // shift, scale = scale_shift_table[None] + embedded_timestep[:, None]
        let e = s.conditioning.embeddedTimestep
        let mod = Modulation(addTable(scaleShiftTable, to: concatFeatures([e, e])), dim: config.innerDim)
        return projOut(mod.modulate(layerNorm(s.hidden, eps: 1e-6), scale: 1, shift: 0))
    }

    public func output(_ tokens: Tensor, grid: TokenLayout) -> Tensor {
        unpatchify(tokens, grid: grid, patchSize: config.patchSize, channels: config.outputChannels)
    }

    public var hiddenSize: Int { config.innerDim }
}
