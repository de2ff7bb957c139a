import ParaDiTTensor
import ParaDiTWeights

/// `config.json` of `FluxTransformer2DModel` (Flux.1 dev and schnell), with diffusers' defaults.
public struct FluxConfig: Decodable, Sendable {
    public var patchSize, inChannels, numLayers, numSingleLayers, attentionHeadDim, numAttentionHeads: Int
    public var outChannels: Int?
    public var jointAttentionDim, pooledProjectionDim: Int
    public var guidanceEmbeds: Bool
    public var axesDimsRope: [Int]

    enum CodingKeys: String, CodingKey {
        case patchSize, inChannels, numLayers, numSingleLayers, attentionHeadDim, numAttentionHeads, outChannels
        case jointAttentionDim, pooledProjectionDim, guidanceEmbeds, axesDimsRope
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        patchSize = try c.value(.patchSize, default: 1)
        inChannels = try c.value(.inChannels, default: 64)
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels)
        numLayers = try c.value(.numLayers, default: 19)
        numSingleLayers = try c.value(.numSingleLayers, default: 38)
        attentionHeadDim = try c.value(.attentionHeadDim, default: 128)
        numAttentionHeads = try c.value(.numAttentionHeads, default: 24)
        jointAttentionDim = try c.value(.jointAttentionDim, default: 4096)
        pooledProjectionDim = try c.value(.pooledProjectionDim, default: 768)
        guidanceEmbeds = try c.value(.guidanceEmbeds, default: false)
        axesDimsRope = try c.value(.axesDimsRope, default: [16, 56, 56])
    }

    public var innerDim: Int { numAttentionHeads * attentionHeadDim }
    public var outputChannels: Int { outChannels ?? inChannels }
}

/// The inputs of one Flux forward pass, named as diffusers' `forward()` arguments. Latents come
/// packed: hidden_states [B, tokens, in_channels] with img_ids [tokens, 3], txt_ids [Lt, 3].
public struct FluxInputs {
    public var hiddenStates: Tensor
    public var encoderHiddenStates: Tensor
    public var pooledProjections: Tensor
    public var timestep: [Float]
    public var imgIds: Tensor
    public var txtIds: Tensor
    public var guidance: [Float] = []

    public init(hiddenStates: Tensor, encoderHiddenStates: Tensor, pooledProjections: Tensor, timestep: [Float],
                imgIds: Tensor, txtIds: Tensor, guidance: [Float] = []) {
        (self.hiddenStates, self.encoderHiddenStates, self.pooledProjections) = (hiddenStates, encoderHiddenStates, pooledProjections)
        (self.timestep, self.imgIds, self.txtIds, self.guidance) = (timestep, imgIds, txtIds, guidance)
    }
}

/// `FluxTransformer2DModel`: double-stream (MMDiT) blocks, then single-stream blocks over
/// [text; image], with 3-axis RoPE from the position ids.
public final class FluxTransformer2DModel {
    public let config: FluxConfig
    let timeTextEmbed: CombinedTimestepTextProjEmbeddings
    let contextEmbedder: Linear, xEmbedder: Linear
    public let transformerBlocks: [JointTransformerBlock]
    public let singleTransformerBlocks: [FluxSingleTransformerBlock]
    let normOut: AdaLNProjection
    let projOut: Linear

    public init(config: FluxConfig, weights w: Weights) throws {
        guard config.axesDimsRope.reduce(0, +) == config.attentionHeadDim else {
            throw WeightsError.badConfig(path: "config.json", reason: "axes_dims_rope \(config.axesDimsRope) must add up to attention_head_dim \(config.attentionHeadDim)")
        }
        self.config = config
        let dim = config.innerDim
        timeTextEmbed = try CombinedTimestepTextProjEmbeddings(w.scope("time_text_embed"), dim: dim, pooledDim: config.pooledProjectionDim,
                                                               guidance: config.guidanceEmbeds)
        contextEmbedder = try Linear(w.scope("context_embedder"), in: config.jointAttentionDim, out: dim)
        xEmbedder = try Linear(w.scope("x_embedder"), in: config.inChannels, out: dim)
        transformerBlocks = try (0..<config.numLayers).map { i in
            try JointTransformerBlock(w.scope("transformer_blocks").scope(i), dim: dim, heads: config.numAttentionHeads,
                                      headDim: config.attentionHeadDim, contextPreOnly: false, qkNorm: true,
                                      dualAttention: false, contextFirst: true)
        }
        singleTransformerBlocks = try (0..<config.numSingleLayers).map { i in
            try FluxSingleTransformerBlock(w.scope("single_transformer_blocks").scope(i), dim: dim,
                                           heads: config.numAttentionHeads, headDim: config.attentionHeadDim)
        }
        normOut = try AdaLNProjection(w.scope("norm_out"), dim: dim, chunks: 2)
        projOut = try Linear(w.scope("proj_out"), in: dim, out: config.patchSize * config.patchSize * config.outputChannels)
    }

    /// State shared by the blocks of one forward pass.
    public struct State {
        public var hidden: Tensor, context: Tensor, temb: Tensor, rope: RotaryTables
    }

    /// The layout of packed latents: one row per image token, in img_ids order (a 1 × N grid).
    public func layout(_ inputs: FluxInputs) -> TokenLayout {
        TokenLayout(gridHeight: 1, gridWidth: inputs.imgIds.size(0))
    }

    /// Embeds this rank's image tokens (`layout.tokens` of the packed sequence) and its text tokens
    /// (`layout.text`, nil for all); RoPE tables cover [those text tokens; those image tokens].
    public func embed(_ inputs: FluxInputs, layout: TokenLayout? = nil) throws -> State {
        let b = inputs.hiddenStates.size(0)
        try expectDim("hidden_states", "channels", inputs.hiddenStates.size(2), config.inChannels)
        try expectDim("encoder_hidden_states", "channels", inputs.encoderHiddenStates.size(2), config.jointAttentionDim)
        try expectDim("pooled_projections", "channels", inputs.pooledProjections.size(1), config.pooledProjectionDim)
        if config.guidanceEmbeds && inputs.guidance.count != b {
            throw WeightsError.badInput(name: "guidance", reason: "this Flux model (dev) embeds guidance: pass guidance [\(b)]")
        }
        let lt = inputs.txtIds.size(0), li = inputs.imgIds.size(0)
        guard inputs.hiddenStates.size(1) == li, inputs.encoderHiddenStates.size(1) == lt else {
            throw WeightsError.badInput(name: "img_ids", reason: "img_ids has \(li) rows and txt_ids \(lt), but hidden_states has \(inputs.hiddenStates.size(1)) tokens and encoder_hidden_states \(inputs.encoderHiddenStates.size(1))")
        }
        // diffusers scales timestep and guidance by 1000 before embedding them.
        let temb = timeTextEmbed(timesteps: inputs.timestep.map { $0 * 1000 }, pooled: inputs.pooledProjections,
                                 guidance: inputs.guidance.map { $0 * 1000 })
        let mine = layout?.tokens ?? 0..<li, text = layout?.text ?? 0..<lt
        let imgIds = mine == 0..<li ? inputs.imgIds : inputs.imgIds.rows(mine)
        let txtIds = text == 0..<lt ? inputs.txtIds : inputs.txtIds.rows(text)
        let ids = concatSequence([txtIds.reshaped([1, text.count, 3]), imgIds.reshaped([1, mine.count, 3])])
        let (cos, sin) = withExtendedLifetime(ids) {
            ropeFrequencies(ids: ids.data, tokens: text.count + mine.count, axesDim: config.axesDimsRope, theta: 10000)
        }
        let hidden = mine == 0..<li ? inputs.hiddenStates : sliceSequence(inputs.hiddenStates, mine)
        let context = text == 0..<lt ? inputs.encoderHiddenStates : sliceSequence(inputs.encoderHiddenStates, text)
        return State(hidden: xEmbedder(hidden), context: contextEmbedder(context),
                     temb: temb, rope: RotaryTables(cos: cos, sin: sin))
    }

    public var blockCount: Int { transformerBlocks.count + singleTransformerBlocks.count }

    /// Block i: double-stream blocks first; at the first single block the streams are joined
    /// (text first) in `state.hidden`, and `state.context` keeps the text length.
    public func block(_ i: Int, _ s: inout State, runtime: AttentionRuntime) throws {
        if i < transformerBlocks.count {
            try transformerBlocks[i](s.hidden, context: s.context, temb: s.temb, rope: s.rope, runtime: runtime)
            return
        }
        if i == transformerBlocks.count { s.hidden = concatSequence([s.context, s.hidden]) }
        try singleTransformerBlocks[i - transformerBlocks.count](s.hidden, textTokens: s.context.size(1), temb: s.temb, rope: s.rope,
                                                             runtime: runtime)
    }

    /// Output [B, image tokens, patch²·out_channels] (still packed, as diffusers returns it).
    public func head(_ s: State) -> Tensor {
        let lt = s.context.size(1)
        let image = singleTransformerBlocks.isEmpty ? s.hidden : sliceSequence(s.hidden, lt..<s.hidden.size(1))
        return projOut(normOut(s.temb).modulate(layerNorm(image, eps: 1e-6), scale: 0, shift: 1))
    }

    public func forward(_ inputs: FluxInputs, runtime: AttentionRuntime = SerialAttention()) throws -> Tensor {
        var state = try embed(inputs, layout: layout(inputs))
        for i in 0..<blockCount { try block(i, &state, runtime: runtime) }
        return head(state)
    }
}
