import ParaDiTTensor
import ParaDiTWeights

/// `config.json` of `DiTTransformer2DModel`, with diffusers' defaults.
public struct DiTConfig: Decodable, Sendable {
    public var numAttentionHeads: Int
    public var attentionHeadDim: Int
    public var inChannels: Int
    public var outChannels: Int?
    public var numLayers: Int
    public var attentionBias: Bool
    public var sampleSize: Int
    public var patchSize: Int
    public var activationFn: String
    public var numEmbedsAdaNorm: Int
    public var normType: String
    public var normElementwiseAffine: Bool
    public var normEps: Float

    enum CodingKeys: String, CodingKey {
        case numAttentionHeads, attentionHeadDim, inChannels, outChannels, numLayers, attentionBias, sampleSize
        case patchSize, activationFn, numEmbedsAdaNorm, normType, normElementwiseAffine, normEps
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        numAttentionHeads = try c.value(.numAttentionHeads, default: 16)
        attentionHeadDim = try c.value(.attentionHeadDim, default: 72)
        inChannels = try c.value(.inChannels, default: 4)
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels)
        numLayers = try c.value(.numLayers, default: 28)
        attentionBias = try c.value(.attentionBias, default: true)
        sampleSize = try c.value(.sampleSize, default: 32)
        patchSize = try c.value(.patchSize, default: 2)
        activationFn = try c.value(.activationFn, default: "gelu-approximate")
        numEmbedsAdaNorm = try c.value(.numEmbedsAdaNorm, default: 1000)
        normType = try c.value(.normType, default: "ada_norm_zero")
        normElementwiseAffine = try c.value(.normElementwiseAffine, default: false)
        normEps = try c.value(.normEps, default: 1e-5)
    }

    public var innerDim: Int { numAttentionHeads * attentionHeadDim }
    public var outputChannels: Int { outChannels ?? inChannels }
}

/// The inputs of one DiT forward pass, named as diffusers' `forward()` arguments.
public struct DiTInputs {
    /// Latents [B, C, H, W].
    public var hiddenStates: Tensor
    public var timestep: [Float]
    public var classLabels: [Int]

    public init(hiddenStates: Tensor, timestep: [Float], classLabels: [Int]) {
        (self.hiddenStates, self.timestep, self.classLabels) = (hiddenStates, timestep, classLabels)
    }
}

/// `DiTTransformer2DModel`: class-conditional DiT with adaLN-zero blocks and (for the original
/// checkpoints) learned sigma in the output channels.
public final class DiTTransformer2DModel: SingleStreamTransformer {
    public let config: DiTConfig
    let posEmbed: PatchEmbed
    public let transformerBlocks: [AdaLNZeroTransformerBlock]
    let projOut1: Linear, projOut2: Linear

    public init(config: DiTConfig, weights w: Weights) throws {
        compute = w.compute
        guard config.normType == "ada_norm_zero" else {
            throw WeightsError.badConfig(path: "config.json", reason: "norm_type \"\(config.normType)\": DiTTransformer2DModel supports only ada_norm_zero")
        }
        self.config = config
        let dim = config.innerDim
        posEmbed = try PatchEmbed(w.scope("pos_embed"), inChannels: config.inChannels, dim: dim,
                                  patchSize: config.patchSize, sampleSize: config.sampleSize)
        transformerBlocks = try (0..<config.numLayers).map { i in
            try AdaLNZeroTransformerBlock(w.scope("transformer_blocks").scope(i), dim: dim, heads: config.numAttentionHeads,
                                          headDim: config.attentionHeadDim, classes: config.numEmbedsAdaNorm,
                                          attentionBias: config.attentionBias, activation: config.activationFn,
                                          normEps: config.normEps, normAffine: config.normElementwiseAffine)
        }
        projOut1 = try Linear(w.scope("proj_out_1"), in: dim, out: 2 * dim)
        projOut2 = try Linear(w.scope("proj_out_2"), in: dim, out: config.patchSize * config.patchSize * config.outputChannels)
    }

    /// State between blocks: the hidden states and the per-sample conditioning.
    public struct State: SingleStreamState {
        public var hidden: Tensor
        var timestep: [Float], labels: [Int]
    }

    public var className: String { "DiTTransformer2DModel" }
    public let compute: ComputeDType
    public var blockCount: Int { transformerBlocks.count }

    public func problem(_ inputs: DiTInputs) throws -> TransformerProblem {
        try expectDim("hidden_states", "channels", inputs.hiddenStates.size(1), config.inChannels)
        let rows = transformerBlocks[0].norm1.emb.classEmbedder.rows
        if let bad = inputs.classLabels.first(where: { $0 < 0 || $0 >= rows }) {
            throw WeightsError.badInput(name: "class_labels", reason: "label \(bad) is outside 0..<\(rows) (\(rows - 1) is the unconditional class)")
        }
        let (h, w) = (inputs.hiddenStates.size(2), inputs.hiddenStates.size(3))
        guard h == w else {
            throw WeightsError.badInput(name: "hidden_states", reason: "DiTTransformer2DModel needs a square latent, got \(h)×\(w)")
        }
        return TransformerProblem(batch: inputs.batch, heads: config.numAttentionHeads, headDim: config.attentionHeadDim,
                                  grid: try .patches(latentHeight: h, latentWidth: w, patchSize: config.patchSize),
                                  attentionLayers: config.numLayers)
    }

    // MARK: embed → blocks → head

    /// Patch and position embedding: [B, C, H, W] → [B, tokens, dim].
    public func embed(_ inputs: DiTInputs, layout: TokenLayout) throws -> State {
        State(hidden: try posEmbed(inputs.hiddenStates, layout: layout), timestep: inputs.timestep, labels: inputs.classLabels)
    }

    public func block(_ i: Int, _ s: inout State, attention: AttentionRuntime) throws {
        try transformerBlocks[i](s.hidden, timesteps: s.timestep, labels: s.labels, runtime: attention)
    }

    public func modulatedInput(_ s: State) -> Tensor? {
        transformerBlocks[0].modulatedInput(s.hidden, timesteps: s.timestep, labels: s.labels)
    }

    /// Final modulated norm and projection: [B, tokens here, patch²·out_channels].
    public func head(_ s: State) -> Tensor {
        // diffusers conditions the head on block 0's embedding (every stage loads it).
        let conditioning = transformerBlocks[0].norm1.emb(timesteps: s.timestep, labels: s.labels)
        let mod = Modulation(projOut1(silu(conditioning)), dim: config.innerDim)  // chunks: shift, scale
        return projOut2(mod.modulate(layerNorm(s.hidden, eps: 1e-6), scale: 1, shift: 0))
    }

    public func output(_ tokens: Tensor, grid: TokenLayout) -> Tensor {
        unpatchify(tokens, grid: grid, patchSize: config.patchSize, channels: config.outputChannels)
    }

    public var hiddenSize: Int { config.innerDim }
}
