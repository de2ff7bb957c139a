import Foundation
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// Tiny random-weight models of the four classes (weights of std 0.2, so attention is far from
/// uniform and a wrong key set shows) and random inputs for them, written as diffusers names them.
enum TestModels {
    static func config(_ className: String, heads: Int) -> [String: Any] {
        switch className {
        case "DiTTransformer2DModel":
            return ["num_attention_heads": heads, "attention_head_dim": 8, "in_channels": 4, "out_channels": 8, "num_layers": 2,
                    "sample_size": 8, "patch_size": 2, "num_embeds_ada_norm": 10]
        case "PixArtTransformer2DModel":
            // Size conditioning splits the width in three: a head dim of 12 keeps it divisible.
            return ["num_attention_heads": heads, "attention_head_dim": 12, "in_channels": 4, "out_channels": 8, "num_layers": 2,
                    "sample_size": 8, "patch_size": 2, "caption_channels": 12, "cross_attention_dim": heads * 12,
                    "norm_type": "ada_norm_single", "use_additional_conditions": true]
        case "SD3Transformer2DModel":
            return ["num_attention_heads": heads, "attention_head_dim": 8, "in_channels": 4, "out_channels": 4, "num_layers": 2,
                    "sample_size": 8, "patch_size": 2, "joint_attention_dim": 12, "caption_projection_dim": heads * 8,
                    "pooled_projection_dim": 10, "pos_embed_max_size": 12, "qk_norm": "rms_norm", "dual_attention_layers": [0]]
        default:
            return ["num_attention_heads": heads, "attention_head_dim": 16, "in_channels": 8, "num_layers": 1, "num_single_layers": 2,
                    "patch_size": 1, "joint_attention_dim": 12, "pooled_projection_dim": 10, "axes_dims_rope": [4, 6, 6]]
        }
    }

    static func model(_ className: String, heads: Int,
                      compute: ComputeDType = .f32) throws -> any DiffusionTransformer {
        var c = config(className, heads: heads)
        c["_class_name"] = className
        let json = try JSONSerialization.data(withJSONObject: c)
        return try ModelRegistry.build(config: ConfigFile(data: json, path: "test config"),
                                       weights: Weights(randomSeed: 7, std: 0.2, compute: compute))
    }

    /// Inputs of batch `batch` for an h × w latent grid of tokens and `text` caption tokens.
    static func inputs(_ model: any DiffusionTransformer, batch b: Int, grid: (Int, Int), text: Int) throws -> any TransformerInputs {
        let (h, w) = grid
        var t: [String: SafeTensorsValue] = ["timestep": .float(Tensor(shape: [b], values: (0..<b).map { Float(100 + 400 * $0) }))]
        func randn(_ shape: [Int], _ seed: UInt64) -> SafeTensorsValue { .float(Tensor.randn(shape, seed: seed)) }
        switch model.className {
        case "DiTTransformer2DModel":
            t["hidden_states"] = randn([b, 4, 2 * h, 2 * w], 1)
            t["class_labels"] = .int64((0..<b).map { Int64($0 == 1 ? 10 : 3) }, shape: [b])
        case "PixArtTransformer2DModel":
            t["hidden_states"] = randn([b, 4, 2 * h, 2 * w], 1)
            t["encoder_hidden_states"] = randn([b, text, 12], 2)
            t["encoder_attention_mask"] = .int64((0..<(b * text)).map { $0 % text < text - 2 || $0 < text ? 1 : 0 }, shape: [b, text])
            t["resolution"] = .float(Tensor(shape: [b, 2], repeating: 64))
            t["aspect_ratio"] = .float(Tensor(shape: [b, 1], repeating: 1))
        case "SD3Transformer2DModel":
            t["hidden_states"] = randn([b, 4, 2 * h, 2 * w], 1)
            t["encoder_hidden_states"] = randn([b, text, 12], 2)
            t["pooled_projections"] = randn([b, 10], 3)
            t["timestep"] = .float(Tensor(shape: [b], values: (0..<b).map { Float(100 + 400 * $0) }))
        default:
            t["hidden_states"] = randn([b, h * w, 8], 1)
            t["encoder_hidden_states"] = randn([b, text, 12], 2)
            t["pooled_projections"] = randn([b, 10], 3)
            t["timestep"] = .float(Tensor(shape: [b], values: (0..<b).map { 0.25 + 0.5 * Float($0) }))
            t["img_ids"] = .float(Tensor(shape: [h * w, 3], values: (0..<(h * w)).flatMap { [0, Float($0 / w), Float($0 % w)] }))
            t["txt_ids"] = .float(Tensor(zeros: [text, 3]))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-parallel-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writeSafeTensors(t, to: path)
        return try ModelRegistry.family(model.className).readInputs(SafeTensorsFile(path: path))
    }

    /// The model's serial output, and every rank's output of the same forward pass under `config`.
    static func run(_ model: any DiffusionTransformer, _ inputs: any TransformerInputs, _ config: ParallelConfig,
                    tracer: Tracer? = nil) throws -> (serial: Tensor, ranks: [Tensor], contexts: [ParallelContext]) {
        // The family's own serial forward is the definition every strategy must equal.
        let serial = try model.forward(any: inputs)
        let box = UncheckedBox((model, inputs))
        let results = try LocalWorld.run(size: config.worldSize, timeout: 60, tracer: tracer) { comm in
            let context = try ParallelContext(config: config, world: comm, tracer: tracer)
            let out = try ParallelTransformer(model: box.value.0, context: context).forward(box.value.1)
            return UncheckedBox((out, context))
        }
        return (serial, results.map { $0.value.0 }, results.map { $0.value.1 })
    }
}

/// Hands non-Sendable values (models, tensors) to the rank threads, which only read them.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

func relativeL2(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        let d = Double(a.data[i]) - Double(b.data[i])
        num += d * d
        den += Double(b.data[i]) * Double(b.data[i])
    }
    return (num / den).squareRoot()
}

/// Runs `c` and expects every rank's forward output to equal serial within relative L2 1e-5.
func expectParity(_ c: ParityCase) throws {
    let model = try TestModels.model(c.className, heads: c.heads)
    let grid = c.className == "DiTTransformer2DModel" && c.grid == (3, 5) ? (4, 4) : c.grid  // DiT grids are square
    let inputs = try TestModels.inputs(model, batch: 2, grid: grid, text: c.text)
    let (serial, ranks, _) = try TestModels.run(model, inputs, c.config)
    for (rank, out) in ranks.enumerated() {
        #expect(out.shape == serial.shape)
        let err = relativeL2(out, serial)
        #expect(err <= 1e-5, "\(c) rank \(rank): relative L2 \(err)")
    }
}
