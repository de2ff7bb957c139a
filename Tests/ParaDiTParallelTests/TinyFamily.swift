import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// A model family defined only in the tests — a small DiT variant with a block of its own
/// (pre-norm attention and MLP, timestep shift and scale, no gates) — that conforms to
/// `DiffusionTransformer`, registers, and so gets every parallel strategy with no parallel code.
struct TinyConfig: Decodable {
    var numAttentionHeads: Int
    var attentionHeadDim: Int
    var inChannels: Int
    var numLayers: Int
    var patchSize: Int
    var sampleSize: Int

    var innerDim: Int { numAttentionHeads * attentionHeadDim }
}

struct TinyInputs: TransformerInputs {
    var hiddenStates: Tensor
    var timestep: [Float]

    func samples(_ r: Range<Int>) -> TinyInputs { TinyInputs(hiddenStates: hiddenStates.rows(r), timestep: Array(timestep[r])) }
    static func concatenated(_ parts: [TinyInputs]) -> TinyInputs {
        TinyInputs(hiddenStates: concatenate(parts.map(\.hiddenStates), axis: 0), timestep: parts.flatMap(\.timestep))
    }
}

/// One block: x += attn(modulate(norm(x))), x += ff(norm(x)).
struct TinyBlock {
    let modulation: Linear
    let attn: SelfAttention
    let ff: FeedForward
    let dim: Int

    init(_ w: Weights, heads: Int, headDim: Int) throws {
        dim = heads * headDim
        modulation = try Linear(w.scope("modulation"), in: dim, out: 2 * dim)
        attn = try SelfAttention(w.scope("attn"), dim: dim, heads: heads, headDim: headDim, bias: true)
        ff = try FeedForward(w.scope("ff"), dim: dim, inner: 2 * dim, activation: "gelu-approximate")
    }

    func callAsFunction(_ x: Tensor, temb: Tensor, attention: AttentionRuntime) throws -> Tensor {
        let mod = Modulation(modulation(silu(temb)), dim: dim)  // chunks: shift, scale
        let h = x + (try attn(mod.modulate(layerNorm(x, eps: 1e-6), scale: 1, shift: 0), runtime: attention))
        return h + ff(layerNorm(h, eps: 1e-6))
    }
}

final class TinyDiTModel: SingleStreamTransformer {
    let config: TinyConfig
    let posEmbed: PatchEmbed
    let timeEmbed: Linear
    let blocks: [TinyBlock]
    let projOut: Linear

    init(config: TinyConfig, weights w: Weights) throws {
        compute = w.compute
        self.config = config
        let dim = config.innerDim
        posEmbed = try PatchEmbed(w.scope("pos_embed"), inChannels: config.inChannels, dim: dim, patchSize: config.patchSize,
                                  sampleSize: config.sampleSize)
        timeEmbed = try Linear(w.scope("time_embed"), in: 1, out: dim)
        blocks = try (0..<config.numLayers).map {
            try TinyBlock(w.scope("blocks").scope($0), heads: config.numAttentionHeads, headDim: config.attentionHeadDim)
        }
        projOut = try Linear(w.scope("proj_out"), in: dim, out: config.patchSize * config.patchSize * config.inChannels)
    }

    struct State: SingleStreamState {
        var hidden: Tensor
        var temb: Tensor
    }

    var className: String { "TinyDiTModel" }
    let compute: ComputeDType
    var blockCount: Int { blocks.count }
    var architecture: [String] { ["\(config.numLayers) tiny blocks, \(config.numAttentionHeads) heads × \(config.attentionHeadDim)"] }

    func problem(_ inputs: TinyInputs) throws -> TransformerProblem {
        guard inputs.hiddenStates.rank == 4, inputs.hiddenStates.size(1) == config.inChannels, inputs.timestep.count == inputs.batch else {
            throw WeightsError.badInput(name: "hidden_states", reason: "expected [B, \(config.inChannels), H, W] and one timestep per sample")
        }
        let grid = try TokenLayout.patches(latentHeight: inputs.hiddenStates.size(2), latentWidth: inputs.hiddenStates.size(3),
                                           patchSize: config.patchSize)
        return TransformerProblem(batch: inputs.batch, heads: config.numAttentionHeads, headDim: config.attentionHeadDim,
                                  grid: grid, attentionLayers: config.numLayers)
    }

    func embed(_ inputs: TinyInputs, layout: TokenLayout) throws -> State {
        let t = Tensor(shape: [inputs.batch, 1], values: inputs.timestep.map { $0 / 1000 })
        return State(hidden: try posEmbed(inputs.hiddenStates, layout: layout), temb: timeEmbed(t))
    }

    func block(_ i: Int, _ s: inout State, attention: AttentionRuntime) throws {
        s.hidden = try blocks[i](s.hidden, temb: s.temb, attention: attention)
    }

    func head(_ s: State) -> Tensor { projOut(layerNorm(s.hidden, eps: 1e-6)) }

    func output(_ tokens: Tensor, grid: TokenLayout) -> Tensor {
        unpatchify(tokens, grid: grid, patchSize: config.patchSize, channels: config.inChannels)
    }

    var hiddenSize: Int { config.innerDim }

    static let family = ModelFamily(
        className: "TinyDiTModel",
        build: { file, w in try TinyDiTModel(config: file.decode(TinyConfig.self), weights: w) },
        blockCount: { try $0.decode(TinyConfig.self).numLayers },
        blockOfKey: { _ in ModelFamily.numberedBlocks([("blocks", 0)]) },
        readInputs: { file in
            let x = try file.tensor("hidden_states")
            return TinyInputs(hiddenStates: x, timestep: try file.values("timestep").map { Float($0) })
        },
        inputNames: "hidden_states [B,C,H,W], timestep [B]")

    /// Registers the family once and builds a 3-block model of `heads` heads with random weights.
    static func make(heads: Int = 4) throws -> TinyDiTModel {
        _ = registered
        let json = """
            {"_class_name": "TinyDiTModel", "num_attention_heads": \(heads), "attention_head_dim": 8, "in_channels": 4,
             "num_layers": 3, "patch_size": 2, "sample_size": 8}
            """
        let model = try ModelRegistry.build(config: ConfigFile(data: Data(json.utf8), path: "tiny config"),
                                            weights: Weights(randomSeed: 11, std: 0.2))
        return model as! TinyDiTModel
    }

    static let registered: Void = ModelRegistry.register(family)

    /// Inputs of `batch` samples on an h × w token grid.
    static func inputs(batch b: Int, grid: (Int, Int)) -> TinyInputs {
        TinyInputs(hiddenStates: .randn([b, 4, 2 * grid.0, 2 * grid.1], seed: 5), timestep: (0..<b).map { Float(100 + 300 * $0) })
    }
}
