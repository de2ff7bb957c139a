import Foundation
import ParaDiTTensor
import ParaDiTWeights

extension DiTTransformer2DModel {
    /// The registry entry of `DiTTransformer2DModel`.
    public static let family = ModelFamily(
        className: "DiTTransformer2DModel",
        build: { file, w in try DiTTransformer2DModel(config: file.decode(DiTConfig.self), weights: w) },
        blockCount: { try $0.decode(DiTConfig.self).numLayers },
        blockOfKey: { _ in
            let numbered = ModelFamily.numberedBlocks([("transformer_blocks", 0)])
            // The head conditions on block 0's class/timestep embedding: every stage keeps it.
            return { key in key.hasPrefix("transformer_blocks.0.norm1.emb.") ? nil : numbered(key) }
        },
        readInputs: { try DiTInputs(file: $0) },
        inputNames: "hidden_states [B,C,H,W], timestep [B], class_labels [B]",
        presets: [ModelPreset(name: "dit-xl-2-256", config: """
            {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8, "num_layers": 28,
             "sample_size": 32, "patch_size": 2, "num_embeds_ada_norm": 1000}
            """, summary: "DiT-XL/2, 256 px (32×32 latent, 256 tokens), batch 2 (CFG)") {
                ["hidden_states": .float(.randn([2, 4, 32, 32], seed: 1)), "timestep": .int64([500, 500], shape: [2]),
                 "class_labels": .int64([207, 1000], shape: [2])]
            }])

    public var architecture: [String] {
        let c = config
        return ["\(c.numLayers) adaLN-zero blocks, \(c.numAttentionHeads) heads × \(c.attentionHeadDim) (width \(c.innerDim))",
                "latent \(c.inChannels) → \(c.outputChannels) channels, patch \(c.patchSize), sample size \(c.sampleSize), \(c.numEmbedsAdaNorm) classes"]
    }
}

extension DiTInputs: TransformerInputs {
    public func samples(_ r: Range<Int>) -> DiTInputs {
        DiTInputs(hiddenStates: hiddenStates.rows(r), timestep: timestep.isEmpty ? [] : Array(timestep[r]), classLabels: Array(classLabels[r]))
    }

    public static func concatenated(_ parts: [DiTInputs]) -> DiTInputs {
        DiTInputs(hiddenStates: concatenate(parts.map(\.hiddenStates), axis: 0), timestep: parts.flatMap(\.timestep),
                  classLabels: parts.flatMap(\.classLabels))
    }
}

extension DiTInputs {
    /// Reads `hidden_states`, `timestep` and `class_labels` as diffusers names them.
    public init(file: SafeTensorsFile) throws {
        hiddenStates = try latent(file, "hidden_states")
        let batch = hiddenStates.size(0)
        timestep = try perSample(file, "timestep", batch: batch).map { Float($0) }
        classLabels = try perSample(file, "class_labels", batch: batch).map { Int($0) }
    }
}
