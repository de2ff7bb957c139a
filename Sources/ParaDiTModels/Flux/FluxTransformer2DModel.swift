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
public final class FluxTransformer2DModel: DiffusionTransformer {
    public let config: FluxConfig
    let timeTextEmbed: CombinedTimestepTextProjEmbeddings
    let contextEmbedder: Linear, xEmbedder: Linear
    public let transformerBlocks: [JointTransformerBlock]
    public let singleTransformerBlocks: [FluxSingleTransformerBlock]
    let normOut: AdaLNProjection
    let projOut: Linear

    public init(config: FluxConfig, weights w: Weights) throws {
        compute = w.compute
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
        /// Whether `hidden` holds [text; image] (from the first single block on).
        var joined = false
    }

    public var className: String { "FluxTransformer2DModel" }
    public let compute: ComputeDType

    public func problem(_ inputs: FluxInputs) throws -> TransformerProblem {
        let b = inputs.batch
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
        return TransformerProblem(batch: b, heads: config.numAttentionHeads, headDim: config.attentionHeadDim,
                                  grid: Self.grid(imgIds: inputs.imgIds), jointTextTokens: lt,
                                  attentionLayers: config.numLayers + config.numSingleLayers)
    }

    /// The packed tokens' grid: rows × columns when img_ids are (·, row, column) of a row-major
    /// grid, as the pipeline makes them; otherwise one row of all tokens (RoPE reads the ids).
    static func grid(imgIds: Tensor) -> TokenLayout {
        let n = imgIds.size(0), ids = imgIds.scalars
        let columns = (0..<n).map { Int(ids[3 * $0 + 2]) }.max().map { $0 + 1 } ?? 1
        let isGrid = columns > 0 && n % columns == 0 && (0..<n).allSatisfy { t in
            ids[3 * t + 1] == Float(t / columns) && ids[3 * t + 2] == Float(t % columns)
        }
        return isGrid ? TokenLayout(gridHeight: n / columns, gridWidth: columns) : TokenLayout(gridHeight: 1, gridWidth: n)
    }

    /// Embeds this rank's image tokens (`layout.tokens` of the packed sequence) and its text tokens
    /// (`layout.text`, nil for all); RoPE tables cover [those text tokens; those image tokens].
    public func embed(_ inputs: FluxInputs, layout: TokenLayout) throws -> State {
        let lt = inputs.txtIds.size(0), li = inputs.imgIds.size(0)
        // diffusers scales timestep and guidance by 1000 before embedding them.
        let temb = timeTextEmbed(timesteps: inputs.timestep.map { $0 * 1000 }, pooled: inputs.pooledProjections,
                                 guidance: inputs.guidance.map { $0 * 1000 })
        let mine = layout.tokens, text = layout.text ?? 0..<lt
        let imgIds = mine == 0..<li ? inputs.imgIds : inputs.imgIds.rows(mine)
        let txtIds = text == 0..<lt ? inputs.txtIds : inputs.txtIds.rows(text)
        let ids = concatSequence([txtIds.reshaped([1, text.count, 3]), imgIds.reshaped([1, mine.count, 3])])
        let (cos, sin) = ropeFrequencies(ids: ids.reshaped([text.count + mine.count, 3]), axesDim: config.axesDimsRope, theta: 10000)
        let hidden = mine == 0..<li ? inputs.hiddenStates : sliceSequence(inputs.hiddenStates, mine)
        let context = text == 0..<lt ? inputs.encoderHiddenStates : sliceSequence(inputs.encoderHiddenStates, text)
        return State(hidden: xEmbedder(hidden), context: contextEmbedder(context),
                     temb: temb, rope: RotaryTables(cos: cos, sin: sin))
    }

    public var blockCount: Int { transformerBlocks.count + singleTransformerBlocks.count }

    /// Block i: double-stream blocks first; at the first single block the streams are joined
    /// (text first) in `state.hidden`, and `state.context` keeps the text length.
    public func block(_ i: Int, _ s: inout State, attention runtime: AttentionRuntime) throws {
        if i < transformerBlocks.count {
            try transformerBlocks[i](s.hidden, context: s.context, temb: s.temb, rope: s.rope, runtime: runtime)
            return
        }
        if i == transformerBlocks.count { s = joined(s) }
        try singleTransformerBlocks[i - transformerBlocks.count](s.hidden, textTokens: s.context.size(1), temb: s.temb, rope: s.rope,
                                                             runtime: runtime)
    }

    /// Joined for the single blocks and the head (a stage starting at the first single block still
    /// receives both streams, as `handOff` sends them).
    public func prepared(_ s: State, forBlock nextBlock: Int) -> State {
        nextBlock > transformerBlocks.count ? joined(s) : s
    }

    /// The text and image streams as one (text first), once.
    func joined(_ s: State) -> State {
        guard !s.joined && !singleTransformerBlocks.isEmpty else { return s }
        var s = s
        s.hidden = concatSequence([s.context, s.hidden])
        s.joined = true
        return s
    }

    public func modulatedInput(_ s: State) -> Tensor? {
        s.joined ? nil : transformerBlocks.first?.modulatedInput(s.hidden, temb: s.temb)
    }

    /// TeaCache's published FLUX.1 polynomial (its TeaCache4FLUX), highest degree first.
    public var teaCacheCoefficients: [Double]? { [498.651651, -283.781631, 55.8554382, -3.82021401, 0.264230861] }

    /// Output [B, image tokens here, patch²·out_channels] (still packed, as diffusers returns it).
    public func head(_ s: State) -> Tensor {
        let lt = s.context.size(1)
        let image = singleTransformerBlocks.isEmpty ? s.hidden : sliceSequence(s.hidden, lt..<s.hidden.size(1))
        return projOut(normOut(s.temb).modulate(layerNorm(image, eps: 1e-6), scale: 0, shift: 1))
    }

    public func output(_ tokens: Tensor, grid: TokenLayout) -> Tensor { tokens }

    /// Both streams until they are joined, then the joined one.
    public func handOff(_ s: State, nextBlock: Int) -> [Tensor] {
        nextBlock <= transformerBlocks.count ? [s.hidden, s.context] : [s.hidden]
    }

    public func handOffShapes(nextBlock: Int, batch: Int, imageTokens: Int, textTokens: Int) -> [[Int]] {
        let w = config.innerDim
        return nextBlock <= transformerBlocks.count ? [[batch, imageTokens, w], [batch, textTokens, w]]
            : [[batch, textTokens + imageTokens, w]]
    }

    public func resume(_ s: State, from tensors: [Tensor]) -> State {
        var s = s
        // After the join the text length is all the blocks need of `context`.
        s.hidden = tensors[0]
        if tensors.count == 2 { s.context = tensors[1] }
        s.joined = tensors.count == 1 && !singleTransformerBlocks.isEmpty
        return s
    }
}
