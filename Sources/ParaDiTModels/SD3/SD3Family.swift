import Foundation
import ParaDiTTensor
import ParaDiTWeights

extension SD3Transformer2DModel {
    /// The registry entry of `SD3Transformer2DModel` (SD3 and SD3.5).
    public static let family = ModelFamily(
        className: "SD3Transformer2DModel",
        build: { file, w in try SD3Transformer2DModel(config: file.decode(SD3Config.self), weights: w) },
        blockCount: { try $0.decode(SD3Config.self).numLayers },
        blockOfKey: { _ in ModelFamily.numberedBlocks([("transformer_blocks", 0)]) },
        readInputs: { try SD3Inputs(file: $0) },
        inputNames: "hidden_states, encoder_hidden_states, timestep, pooled_projections [B,P]",
        presets: [ModelPreset(name: "sd3-medium-512", config: """
            {"sample_size": 128, "patch_size": 2, "in_channels": 16, "num_layers": 24, "attention_head_dim": 64,
             "num_attention_heads": 24, "joint_attention_dim": 4096, "caption_projection_dim": 1536,
             "pooled_projection_dim": 2048, "out_channels": 16, "pos_embed_max_size": 192}
            """, summary: "SD3 medium, 512 px (1024 tokens), 333 text tokens, batch 2 (CFG)", inputs: sd3StepInputs),
            ModelPreset(name: "sd35-large", config: """
            {"sample_size": 128, "patch_size": 2, "in_channels": 16, "num_layers": 38, "attention_head_dim": 64,
             "num_attention_heads": 38, "joint_attention_dim": 4096, "caption_projection_dim": 2432,
             "pooled_projection_dim": 2048, "out_channels": 16, "pos_embed_max_size": 192, "qk_norm": "rms_norm"}
            """, summary: "SD3.5 large whole (38 blocks, width 2432, qk-norm, 8.1 B), 512 px (1024 tokens), 333 text tokens, batch 2 (CFG)",
            inputs: sd3StepInputs)])

    /// One 512 px step of SD3: 1024 image tokens, 77 + 256 text tokens, batch 2 (CFG).
    static func sd3StepInputs() -> [String: SafeTensorsValue] {
        ["hidden_states": .float(.randn([2, 16, 64, 64], seed: 1)), "encoder_hidden_states": .float(.randn([2, 333, 4096], seed: 2)),
         "pooled_projections": .float(.randn([2, 2048], seed: 3)), "timestep": .int64([500, 500], shape: [2])]
    }

    public var architecture: [String] {
        let c = config
        return ["\(c.numLayers) joint (MMDiT) blocks, \(c.numAttentionHeads) heads × \(c.attentionHeadDim) (width \(c.innerDim))",
                "latent \(c.inChannels) → \(c.outputChannels) channels, patch \(c.patchSize), positions cropped from \(c.posEmbedMaxSize ?? 0)²",
                "text \(c.jointAttentionDim) → \(c.captionProjectionDim), pooled \(c.pooledProjectionDim), qk-norm \(c.qkNorm ?? "none"), dual attention in \(c.dualAttentionLayers.count) blocks"]
    }
}

extension SD3Inputs: TransformerInputs {
    public func samples(_ r: Range<Int>) -> SD3Inputs {
        SD3Inputs(hiddenStates: hiddenStates.rows(r), encoderHiddenStates: encoderHiddenStates.rows(r),
                  pooledProjections: pooledProjections.rows(r), timestep: timestep.isEmpty ? [] : Array(timestep[r]))
    }

    public static func concatenated(_ parts: [SD3Inputs]) -> SD3Inputs {
        SD3Inputs(hiddenStates: concatenate(parts.map(\.hiddenStates), axis: 0),
                  encoderHiddenStates: concatenate(parts.map(\.encoderHiddenStates), axis: 0),
                  pooledProjections: concatenate(parts.map(\.pooledProjections), axis: 0),
                  timestep: parts.flatMap(\.timestep))
    }
}

extension SD3Inputs {
    /// Reads hidden_states, encoder_hidden_states, pooled_projections and timestep.
    public init(file: SafeTensorsFile) throws {
        hiddenStates = try latent(file, "hidden_states")
        let b = hiddenStates.size(0)
        encoderHiddenStates = try batched(file, "encoder_hidden_states", batch: b, rank: 3)
        pooledProjections = try batched(file, "pooled_projections", batch: b, rank: 2)
        timestep = try perSample(file, "timestep", batch: b).map { Float($0) }
    }
}
