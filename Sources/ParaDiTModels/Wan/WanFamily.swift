import ParaDiTTensor
import ParaDiTWeights

extension WanTransformer3DModel {
    /// The registry entry of `WanTransformer3DModel` (Wan 2.1 text-to-video).
    public static let family = ModelFamily(
        className: "WanTransformer3DModel",
        build: { file, w in try WanTransformer3DModel(config: file.decode(WanConfig.self), weights: w) },
        blockCount: { try $0.decode(WanConfig.self).numLayers },
        // Every block's conditioning (timestep projection, text, RoPE) is embedded by each stage.
        blockOfKey: { _ in ModelFamily.numberedBlocks([("blocks", 0)]) },
        readInputs: { try WanInputs(file: $0) },
        inputNames: "hidden_states [B,C,F,H,W], timestep [B], encoder_hidden_states [B,L,text_dim]",
        presets: [ModelPreset(name: "wan-1.3b-480p", config: """
            {"patch_size": [1, 2, 2], "num_attention_heads": 12, "attention_head_dim": 128, "in_channels": 16,
             "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 8960, "num_layers": 30,
             "cross_attn_norm": true, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024}
            """, summary: "Wan 2.1 T2V 1.3B, 480×832, 5 latent frames (17 video frames, 7,800 tokens), "
                + "512 text tokens, batch 2 (CFG)") {
                ["hidden_states": .float(.randn([2, 16, 5, 60, 104], seed: 1)),
                 "encoder_hidden_states": .float(.randn([2, 512, 4096], seed: 2)),
                 "timestep": .int64([500, 500], shape: [2])]
            }])

    public var architecture: [String] {
        let c = config
        return ["\(c.numLayers) blocks (self-attention with 3-axis RoPE \(c.ropeAxes), "
                + "cross-attention to text, feed-forward \(c.ffnDim)), "
                + "\(c.numAttentionHeads) heads × \(c.attentionHeadDim) (width \(c.innerDim))",
                "latent \(c.inChannels) → \(c.outChannels) channels, patch \(c.patchSize), text \(c.textDim), "
                + "qk norm \(c.qkNorm ?? "none")"]
    }
}

extension WanInputs: TransformerInputs {
    public func samples(_ r: Range<Int>) -> WanInputs {
        WanInputs(hiddenStates: hiddenStates.rows(r), timestep: Array(timestep[r]),
                  encoderHiddenStates: encoderHiddenStates.rows(r))
    }

    public static func concatenated(_ parts: [WanInputs]) -> WanInputs {
        WanInputs(hiddenStates: concatenate(parts.map(\.hiddenStates), axis: 0), timestep: parts.flatMap(\.timestep),
                  encoderHiddenStates: concatenate(parts.map(\.encoderHiddenStates), axis: 0))
    }
}

extension WanInputs {
    /// Reads hidden_states [B, C, F, H, W], timestep and encoder_hidden_states.
    public init(file: SafeTensorsFile) throws {
        hiddenStates = try file.tensor("hidden_states")
        guard hiddenStates.rank == 5 else {
            throw WeightsError.badInput(name: "hidden_states", reason: "has shape \(hiddenStates.shape), "
                                        + "expected a video latent [B, C, F, H, W]")
        }
        let batch = hiddenStates.size(0)
        timestep = try perSample(file, "timestep", batch: batch).map { Float($0) }
        encoderHiddenStates = try batched(file, "encoder_hidden_states", batch: batch, rank: 3)
    }
}
