import ParaDiTTensor
import ParaDiTWeights

/// `config.json` of `SD3Transformer2DModel` (SD3 and SD3.5), with diffusers' defaults.
public struct SD3Config: Decodable, Sendable {
    public var sampleSize, patchSize, inChannels, numLayers, attentionHeadDim, numAttentionHeads: Int
    public var jointAttentionDim, captionProjectionDim, pooledProjectionDim: Int
    public var outChannels: Int?
    public var posEmbedMaxSize: Int?
    public var dualAttentionLayers: [Int]
    public var qkNorm: String?

    enum CodingKeys: String, CodingKey {
        case sampleSize, patchSize, inChannels, numLayers, attentionHeadDim, numAttentionHeads, jointAttentionDim
        case captionProjectionDim, pooledProjectionDim, outChannels, posEmbedMaxSize, dualAttentionLayers, qkNorm
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sampleSize = try c.value(.sampleSize, default: 128)
        patchSize = try c.value(.patchSize, default: 2)
        inChannels = try c.value(.inChannels, default: 16)
        numLayers = try c.value(.numLayers, default: 18)
        attentionHeadDim = try c.value(.attentionHeadDim, default: 64)
        numAttentionHeads = try c.value(.numAttentionHeads, default: 18)
        jointAttentionDim = try c.value(.jointAttentionDim, default: 4096)
        captionProjectionDim = try c.value(.captionProjectionDim, default: 1152)
        pooledProjectionDim = try c.value(.pooledProjectionDim, default: 2048)
        outChannels = try c.value(.outChannels, default: 16)
        posEmbedMaxSize = try c.value(.posEmbedMaxSize, default: 96)
        dualAttentionLayers = try c.value(.dualAttentionLayers, default: [])
        qkNorm = try c.decodeIfPresent(String.self, forKey: .qkNorm)
    }

    public var innerDim: Int { numAttentionHeads * attentionHeadDim }
    public var outputChannels: Int { outChannels ?? inChannels }
}

/// The inputs of one SD3 forward pass, named as diffusers' `forward()` arguments.
public struct SD3Inputs {
    public var hiddenStates: Tensor
    public var encoderHiddenStates: Tensor
    public var pooledProjections: Tensor
    public var timestep: [Float]

    public init(hiddenStates: Tensor, encoderHiddenStates: Tensor, pooledProjections: Tensor, timestep: [Float]) {
        (self.hiddenStates, self.encoderHiddenStates) = (hiddenStates, encoderHiddenStates)
        (self.pooledProjections, self.timestep) = (pooledProjections, timestep)
    }
}

/// `SD3Transformer2DModel`: MMDiT joint-attention blocks over image and text tokens.
public final class SD3Transformer2DModel: DiffusionTransformer {
    public let config: SD3Config
    let posEmbed: PatchEmbed
    let timeTextEmbed: CombinedTimestepTextProjEmbeddings
    let contextEmbedder: Linear
    public let transformerBlocks: [JointTransformerBlock]
    let normOut: AdaLNProjection
    let projOut: Linear

    public init(config: SD3Config, weights w: Weights) throws {
        compute = w.compute
        if let q = config.qkNorm, q != "rms_norm" {
            throw WeightsError.badConfig(path: "config.json", reason: "qk_norm \"\(q)\" is not supported (rms_norm or none)")
        }
        guard config.captionProjectionDim == config.innerDim else {
            throw WeightsError.badConfig(path: "config.json", reason: "caption_projection_dim \(config.captionProjectionDim) must equal heads × head dim \(config.innerDim)")
        }
        self.config = config
        let dim = config.innerDim
        posEmbed = try PatchEmbed(w.scope("pos_embed"), inChannels: config.inChannels, dim: dim, patchSize: config.patchSize,
                                  sampleSize: config.sampleSize, posEmbedMaxSize: config.posEmbedMaxSize)
        timeTextEmbed = try CombinedTimestepTextProjEmbeddings(w.scope("time_text_embed"), dim: dim, pooledDim: config.pooledProjectionDim)
        contextEmbedder = try Linear(w.scope("context_embedder"), in: config.jointAttentionDim, out: config.captionProjectionDim)
        transformerBlocks = try (0..<config.numLayers).map { i in
            try JointTransformerBlock(w.scope("transformer_blocks").scope(i), dim: dim, heads: config.numAttentionHeads,
                                      headDim: config.attentionHeadDim, contextPreOnly: i == config.numLayers - 1,
                                      qkNorm: config.qkNorm != nil, dualAttention: config.dualAttentionLayers.contains(i))
        }
        normOut = try AdaLNProjection(w.scope("norm_out"), dim: dim, chunks: 2)
        projOut = try Linear(w.scope("proj_out"), in: dim, out: config.patchSize * config.patchSize * config.outputChannels)
    }

    /// State shared by every block: the conditioning vector and the text stream (updated by blocks).
    public struct State {
        public var hidden: Tensor, context: Tensor, temb: Tensor
    }

    public var className: String { "SD3Transformer2DModel" }
    public let compute: ComputeDType
    public var blockCount: Int { transformerBlocks.count }

    public func problem(_ inputs: SD3Inputs) throws -> TransformerProblem {
        try expectDim("hidden_states", "channels", inputs.hiddenStates.size(1), config.inChannels)
        try expectDim("encoder_hidden_states", "channels", inputs.encoderHiddenStates.size(2), config.jointAttentionDim)
        try expectDim("pooled_projections", "channels", inputs.pooledProjections.size(1), config.pooledProjectionDim)
        let grid = try TokenLayout.patches(latentHeight: inputs.hiddenStates.size(2), latentWidth: inputs.hiddenStates.size(3),
                                           patchSize: config.patchSize)
        return TransformerProblem(batch: inputs.batch, heads: config.numAttentionHeads, headDim: config.attentionHeadDim, grid: grid,
                                  jointTextTokens: inputs.encoderHiddenStates.size(1),
                                  attentionLayers: config.numLayers + config.dualAttentionLayers.count)
    }

    /// Embeds this rank's image tokens and its text tokens (`layout.text`, nil for all).
    public func embed(_ inputs: SD3Inputs, layout: TokenLayout) throws -> State {
        let context = layout.text.map { sliceSequence(inputs.encoderHiddenStates, $0) } ?? inputs.encoderHiddenStates
        return State(hidden: try posEmbed(inputs.hiddenStates, layout: layout),
              context: contextEmbedder(context),
              temb: timeTextEmbed(timesteps: inputs.timestep, pooled: inputs.pooledProjections))
    }

    public func modulatedInput(_ s: State) -> Tensor? { transformerBlocks[0].modulatedInput(s.hidden, temb: s.temb) }

    public func block(_ i: Int, _ s: inout State, attention: AttentionRuntime) throws {
        try transformerBlocks[i](s.hidden, context: s.context, temb: s.temb, runtime: attention)
    }

    /// [B, tokens here, patch²·out_channels].
    public func head(_ s: State) -> Tensor {
        projOut(normOut(s.temb).modulate(layerNorm(s.hidden, eps: 1e-6), scale: 0, shift: 1))
    }

    public func output(_ tokens: Tensor, grid: TokenLayout) -> Tensor {
        unpatchify(tokens, grid: grid, patchSize: config.patchSize, channels: config.outputChannels)
    }

    public func handOff(_ s: State, nextBlock: Int) -> [Tensor] { [s.hidden, s.context] }

    public func handOffShapes(nextBlock: Int, batch: Int, imageTokens: Int, textTokens: Int) -> [[Int]] {
        [[batch, imageTokens, config.innerDim], [batch, textTokens, config.innerDim]]
    }

    public func resume(_ s: State, from tensors: [Tensor]) -> State {
        var s = s
        (s.hidden, s.context) = (tensors[0], tensors[1])
        return s
    }
}
