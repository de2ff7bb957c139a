import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// Real architectures for `paradit bench forward`, with the configs diffusers ships for them and
/// the inputs of one denoising step at the named resolution (batch 2 where the pipeline uses CFG).
/// benchmarks/torch_forward.py builds the same configs in diffusers.
struct ForwardPreset {
    var name: String
    var className: String
    var config: String
    var batch: Int
    var summary: String

    static let all: [ForwardPreset] = [
        ForwardPreset(name: "dit-xl-2-256", className: "DiTTransformer2DModel", config: """
            {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8, "num_layers": 28,
             "sample_size": 32, "patch_size": 2, "num_embeds_ada_norm": 1000}
            """, batch: 2, summary: "DiT-XL/2, 256 px (32×32 latent, 256 tokens), batch 2 (CFG)"),
        ForwardPreset(name: "pixart-512", className: "PixArtTransformer2DModel", config: """
            {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8, "num_layers": 28,
             "cross_attention_dim": 1152, "caption_channels": 4096, "sample_size": 64, "patch_size": 2}
            """, batch: 2, summary: "PixArt-α XL/2, 512 px (1024 tokens), 120 T5 tokens, batch 2 (CFG)"),
        ForwardPreset(name: "sd3-medium-512", className: "SD3Transformer2DModel", config: """
            {"sample_size": 128, "patch_size": 2, "in_channels": 16, "num_layers": 24, "attention_head_dim": 64,
             "num_attention_heads": 24, "joint_attention_dim": 4096, "caption_projection_dim": 1536,
             "pooled_projection_dim": 2048, "out_channels": 16, "pos_embed_max_size": 192}
            """, batch: 2, summary: "SD3 medium, 512 px (1024 tokens), 333 text tokens, batch 2 (CFG)"),
        ForwardPreset(name: "flux-small", className: "FluxTransformer2DModel", config: """
            {"patch_size": 1, "in_channels": 64, "num_layers": 2, "num_single_layers": 4, "attention_head_dim": 128,
             "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768,
             "guidance_embeds": true, "axes_dims_rope": [16, 56, 56]}
            """, batch: 1, summary: "Flux.1-dev width, 2 double + 4 single blocks (of 19 + 38), 512 px (1024 tokens), 512 text tokens"),
    ]

    static var names: [String] { all.map(\.name) }

    /// The model with random weights, and its parameter count.
    func build() throws -> (AnyTransformer, parameters: Int) {
        let json = "{\"_class_name\": \"\(className)\", " + config.drop { $0 != "{" }.dropFirst()
        let file = try ConfigFile(data: Data(json.utf8), path: "preset \(name)")
        let weights = Weights(randomSeed: 1)
        return (try AnyTransformer.build(className: className, config: file, weights: weights), weights.parameterCount)
    }

    /// Random inputs of one step, written to a safetensors file so the timed call is the same
    /// `forward(inputs:)` a user runs.
    func inputs(path: String) throws {
        let b = batch
        var t: [String: SafeTensorsValue] = [:]
        switch className {
        case "DiTTransformer2DModel":
            t["hidden_states"] = .float(.randn([b, 4, 32, 32], seed: 1))
            t["timestep"] = .int64([500, 500], shape: [b])
            t["class_labels"] = .int64([207, 1000], shape: [b])
        case "PixArtTransformer2DModel":
            t["hidden_states"] = .float(.randn([b, 4, 64, 64], seed: 1))
            t["encoder_hidden_states"] = .float(.randn([b, 120, 4096], seed: 2))
            t["timestep"] = .int64([500, 500], shape: [b])
        case "SD3Transformer2DModel":
            t["hidden_states"] = .float(.randn([b, 16, 64, 64], seed: 1))
            t["encoder_hidden_states"] = .float(.randn([b, 333, 4096], seed: 2))
            t["pooled_projections"] = .float(.randn([b, 2048], seed: 3))
            t["timestep"] = .int64([500, 500], shape: [b])
        default:
            t["hidden_states"] = .float(.randn([b, 1024, 64], seed: 1))
            t["encoder_hidden_states"] = .float(.randn([b, 512, 4096], seed: 2))
            t["pooled_projections"] = .float(.randn([b, 768], seed: 3))
            t["timestep"] = .float(Tensor(shape: [b], values: [0.5]))
            t["guidance"] = .float(Tensor(shape: [b], values: [3.5]))
            var img: [Float] = []
            for r in 0..<32 { for c in 0..<32 { img += [0, Float(r), Float(c)] } }
            t["img_ids"] = .float(Tensor(shape: [1024, 3], values: img))
            t["txt_ids"] = .float(Tensor(zeros: [512, 3]))
        }
        try writeSafeTensors(t, to: path)
    }
}
