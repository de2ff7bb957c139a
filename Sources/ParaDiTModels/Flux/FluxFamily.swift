import Foundation
import ParaDiTTensor
import ParaDiTWeights

extension FluxTransformer2DModel {
    /// The registry entry of `FluxTransformer2DModel` (Flux.1 dev and schnell).
    public static let family = ModelFamily(
        className: "FluxTransformer2DModel",
        build: { file, w in try FluxTransformer2DModel(config: file.decode(FluxConfig.self), weights: w) },
        blockCount: { file in
            let c = try file.decode(FluxConfig.self)
            return c.numLayers + c.numSingleLayers
        },
        blockOfKey: { file in
            // Single-stream blocks follow the double-stream ones in forward order.
            let doubles = try file.decode(FluxConfig.self).numLayers
            return ModelFamily.numberedBlocks([("transformer_blocks", 0), ("single_transformer_blocks", doubles)])
        },
        readInputs: { try FluxInputs(file: $0) },
        inputNames: """
            hidden_states [B,N,C] (packed), encoder_hidden_states, pooled_projections, timestep, img_ids [N,3], \
            txt_ids [L,3], guidance [B] (dev only)
            """,
        presets: [ModelPreset(name: "flux-small", config: """
            {"patch_size": 1, "in_channels": 64, "num_layers": 2, "num_single_layers": 4, "attention_head_dim": 128,
             "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768,
             "guidance_embeds": true, "axes_dims_rope": [16, 56, 56]}
            """, summary: "Flux.1-dev width, 2 double + 4 single blocks (of 19 + 38), 512 px (1024 tokens), 512 text tokens",
            inputs: fluxStepInputs),
            ModelPreset(name: "flux-dev", config: """
            {"patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38, "attention_head_dim": 128,
             "num_attention_heads": 24, "joint_attention_dim": 4096, "pooled_projection_dim": 768,
             "guidance_embeds": true, "axes_dims_rope": [16, 56, 56]}
            """, summary: "FLUX.1-dev whole (19 double + 38 single blocks, 11.9 B), 512 px (1024 tokens), 512 text tokens",
            inputs: fluxStepInputs)])

    /// One 512 px step of Flux.1-dev: 1024 packed image tokens, 512 text tokens, guidance 3.5.
    static func fluxStepInputs() -> [String: SafeTensorsValue] {
        var img: [Float] = []
        for t in 0..<1024 { img += [0, Float(t / 32), Float(t % 32)] }
        return ["hidden_states": .float(.randn([1, 1024, 64], seed: 1)), "encoder_hidden_states": .float(.randn([1, 512, 4096], seed: 2)),
                "pooled_projections": .float(.randn([1, 768], seed: 3)), "timestep": .float(Tensor(shape: [1], values: [0.5])),
                "guidance": .float(Tensor(shape: [1], values: [3.5])), "img_ids": .float(Tensor(shape: [1024, 3], values: img)),
                "txt_ids": .float(Tensor(zeros: [512, 3]))]
    }

    public var architecture: [String] {
        let c = config
        return ["\(c.numLayers) double-stream + \(c.numSingleLayers) single-stream blocks, \(c.numAttentionHeads) heads × \(c.attentionHeadDim) (width \(c.innerDim))",
                "packed latent \(c.inChannels) → \(c.outputChannels) channels, RoPE axes \(c.axesDimsRope), guidance embedding \(c.guidanceEmbeds ? "on (dev)" : "off (schnell)")",
                "text \(c.jointAttentionDim), pooled \(c.pooledProjectionDim)"]
    }
}

extension FluxInputs: TransformerInputs {
    public func samples(_ r: Range<Int>) -> FluxInputs {
        var i = self
        (i.hiddenStates, i.encoderHiddenStates) = (hiddenStates.rows(r), encoderHiddenStates.rows(r))
        (i.pooledProjections, i.timestep) = (pooledProjections.rows(r), timestep.isEmpty ? [] : Array(timestep[r]))
        i.guidance = guidance.isEmpty ? [] : Array(guidance[r])
        return i
    }

    /// Position ids are per token, not per sample: the parts share the first one's.
    public static func concatenated(_ parts: [FluxInputs]) -> FluxInputs {
        var i = parts[0]
        (i.hiddenStates, i.encoderHiddenStates) = (concatenate(parts.map(\.hiddenStates), axis: 0),
                                                   concatenate(parts.map(\.encoderHiddenStates), axis: 0))
        (i.pooledProjections, i.timestep) = (concatenate(parts.map(\.pooledProjections), axis: 0),
                                             parts.flatMap(\.timestep))
        i.guidance = parts.flatMap(\.guidance)
        return i
    }
}

extension FluxInputs {
    /// Reads hidden_states (packed), encoder_hidden_states, pooled_projections, timestep, img_ids,
    /// txt_ids (2-D, or 3-D with a batch dimension of 1 as older pipelines passed them) and guidance.
    public init(file: SafeTensorsFile) throws {
        hiddenStates = try file.tensor("hidden_states")
        guard hiddenStates.rank == 3 else {
            throw WeightsError.badInput(name: "hidden_states", reason: "has shape \(hiddenStates.shape), expected packed latents [B, tokens, channels]")
        }
        let b = hiddenStates.size(0)
        encoderHiddenStates = try batched(file, "encoder_hidden_states", batch: b, rank: 3)
        pooledProjections = try batched(file, "pooled_projections", batch: b, rank: 2)
        timestep = try perSample(file, "timestep", batch: b).map { Float($0) }
        imgIds = try Self.ids(file, "img_ids")
        txtIds = try Self.ids(file, "txt_ids")
        if file.entries["guidance"] != nil { guidance = try perSample(file, "guidance", batch: b).map { Float($0) } }
    }

    static func ids(_ file: SafeTensorsFile, _ name: String) throws -> Tensor {
        guard let e = file.entries[name] else { throw WeightsError.badInput(name: name, reason: "missing from \(file.path)") }
        let shape = e.shape.count == 3 && e.shape[0] == 1 ? Array(e.shape.dropFirst()) : e.shape
        guard shape.count == 2, shape[1] == 3 else { throw WeightsError.badInput(name: name, reason: "has shape \(e.shape), expected [tokens, 3]") }
        return Tensor(shape: shape, values: try file.values(name).map { Float($0) })
    }
}
