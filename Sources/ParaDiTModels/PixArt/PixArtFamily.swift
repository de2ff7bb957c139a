import Foundation
import ParaDiTTensor
import ParaDiTWeights

extension PixArtTransformer2DModel {
    /// The registry entry of `PixArtTransformer2DModel` (PixArt-α and PixArt-Σ).
    public static let family = ModelFamily(
        className: "PixArtTransformer2DModel",
        build: { file, w in try PixArtTransformer2DModel(config: file.decode(PixArtConfig.self), weights: w) },
        blockCount: { try $0.decode(PixArtConfig.self).numLayers },
        blockOfKey: { _ in ModelFamily.numberedBlocks([("transformer_blocks", 0)]) },
        readInputs: { try PixArtInputs(file: $0) },
        inputNames: """
            hidden_states, encoder_hidden_states [B,L,C], timestep; optional encoder_attention_mask [B,L] \
            (1 keep, 0 drop), resolution [B,2], aspect_ratio [B,1]
            """,
        presets: [ModelPreset(name: "pixart-512", config: """
            {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8, "num_layers": 28,
             "cross_attention_dim": 1152, "caption_channels": 4096, "sample_size": 64, "patch_size": 2}
            """, summary: "PixArt-α XL/2, 512 px (1024 tokens), 120 T5 tokens, batch 2 (CFG)") {
                ["hidden_states": .float(.randn([2, 4, 64, 64], seed: 1)), "encoder_hidden_states": .float(.randn([2, 120, 4096], seed: 2)),
                 "timestep": .int64([500, 500], shape: [2])]
            }])

    public var architecture: [String] {
        let c = config
        return ["\(c.numLayers) adaLN-single blocks with cross-attention, \(c.numAttentionHeads) heads × \(c.attentionHeadDim) (width \(c.innerDim))",
                "latent \(c.inChannels) → \(c.outputChannels) channels, patch \(c.patchSize), sample size \(c.sampleSize), captions \(c.captionChannels.map(String.init) ?? "pre-projected")",
                "size conditioning \(c.additionalConditions ? "on" : "off"), position interpolation ×\(c.positionInterpolationScale)"]
    }
}

extension PixArtInputs: TransformerInputs {
    public func samples(_ r: Range<Int>) -> PixArtInputs {
        var i = self
        (i.hiddenStates, i.encoderHiddenStates) = (hiddenStates.rows(r), encoderHiddenStates.rows(r))
        i.timestep = timestep.isEmpty ? [] : Array(timestep[r])
        i.encoderAttentionMask = encoderAttentionMask?.rows(r)
        if !resolution.isEmpty { i.resolution = Array(resolution[(2 * r.lowerBound)..<(2 * r.upperBound)]) }
        if !aspectRatio.isEmpty { i.aspectRatio = Array(aspectRatio[r]) }
        return i
    }

    public static func concatenated(_ parts: [PixArtInputs]) -> PixArtInputs {
        var i = parts[0]
        (i.hiddenStates, i.encoderHiddenStates) = (concatenate(parts.map(\.hiddenStates), axis: 0),
                                                   concatenate(parts.map(\.encoderHiddenStates), axis: 0))
        i.timestep = parts.flatMap(\.timestep)
        i.encoderAttentionMask = i.encoderAttentionMask.map { _ in
            concatenate(parts.map { $0.encoderAttentionMask! }, axis: 0)
        }
        (i.resolution, i.aspectRatio) = (parts.flatMap(\.resolution), parts.flatMap(\.aspectRatio))
        return i
    }
}

extension PixArtInputs {
    /// Reads hidden_states, encoder_hidden_states, timestep, and the optional encoder_attention_mask,
    /// resolution and aspect_ratio.
    public init(file: SafeTensorsFile) throws {
        hiddenStates = try latent(file, "hidden_states")
        let b = hiddenStates.size(0)
        encoderHiddenStates = try file.tensor("encoder_hidden_states")
        guard encoderHiddenStates.rank == 3, encoderHiddenStates.size(0) == b else {
            throw WeightsError.badInput(name: "encoder_hidden_states", reason: "has shape \(encoderHiddenStates.shape), expected [\(b), tokens, channels]")
        }
        timestep = try perSample(file, "timestep", batch: b).map { Float($0) }
        if file.entries["encoder_attention_mask"] != nil {
            let values = try file.values("encoder_attention_mask")
            let lt = encoderHiddenStates.size(1)
            guard values.count == b * lt else {
                throw WeightsError.badInput(name: "encoder_attention_mask", reason: "has shape \(file.entries["encoder_attention_mask"]!.shape), expected [\(b), \(lt)]")
            }
            encoderAttentionMask = Tensor(shape: [b, lt], values: values.map { Float($0) })
        }
        if file.entries["resolution"] != nil { resolution = try file.values("resolution").map { Float($0) } }
        if file.entries["aspect_ratio"] != nil { aspectRatio = try file.values("aspect_ratio").map { Float($0) } }
    }
}
