import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// Any supported diffusers transformer, chosen by the `_class_name` of its config: what the CLI
/// loads, inspects and runs without knowing the class in advance.
public enum AnyTransformer {
    case dit(DiTTransformer2DModel)
    case pixart(PixArtTransformer2DModel)
    case sd3(SD3Transformer2DModel)
    case flux(FluxTransformer2DModel)

    /// Opens a diffusers model folder strictly (see `ModelLoader`).
    public static func load(directory: String) throws -> AnyTransformer {
        try load(directory: directory, keepingBlocks: nil).model
    }

    /// Transformer blocks of the model a config describes (Flux: double- plus single-stream).
    public static func blockCount(config file: ConfigFile) throws -> Int {
        switch file.className {
        case "DiTTransformer2DModel": return try file.decode(DiTConfig.self).numLayers
        case "PixArtTransformer2DModel": return try file.decode(PixArtConfig.self).numLayers
        case "SD3Transformer2DModel": return try file.decode(SD3Config.self).numLayers
        case "FluxTransformer2DModel":
            let c = try file.decode(FluxConfig.self)
            return c.numLayers + c.numSingleLayers
        default:
            throw WeightsError.badConfig(path: file.path, reason: "\(file.className) is not supported (supported: \(ModelLoader.supportedClasses.joined(separator: ", ")))")
        }
    }

    /// Opens a model folder reading only the weights of the transformer blocks `keep` (all when
    /// nil; blocks numbered in forward order, Flux's single-stream ones after its double-stream
    /// ones): a pipeline stage's share. The other blocks' weights are checked against the config but
    /// stand in as placeholders, so only blocks in `keep` may run. Also returns the parameters
    /// read and the model's total.
    public static func load(directory: String, keepingBlocks keep: Range<Int>?) throws -> (model: AnyTransformer, read: Int, total: Int) {
        let file = try ConfigFile(directory: directory)
        let doubleBlocks = file.className == "FluxTransformer2DModel" ? try file.decode(FluxConfig.self).numLayers : 0
        let weights = Weights(checkpoint: try Checkpoint(directory: directory)) { key in
            guard let keep else { return false }
            let parts = key.split(separator: ".")
            guard parts.count > 2, let i = Int(parts[1]) else { return false }
            switch parts[0] {
            case "transformer_blocks": return !keep.contains(i)
            case "single_transformer_blocks": return !keep.contains(doubleBlocks + i)
            default: return false
            }
        }
        let model = try build(className: file.className, config: file, weights: weights)
        try weights.checkAllUsed()
        return (model, weights.parameterCount - weights.skippedCount, weights.parameterCount)
    }

    /// Builds `className` from a config and weights (a checkpoint, or random weights for benchmarks).
    public static func build(className: String, config: ConfigFile, weights: Weights) throws -> AnyTransformer {
        switch className {
        case "DiTTransformer2DModel": return .dit(try DiTTransformer2DModel(config: config.decode(DiTConfig.self), weights: weights))
        case "PixArtTransformer2DModel": return .pixart(try PixArtTransformer2DModel(config: config.decode(PixArtConfig.self), weights: weights))
        case "SD3Transformer2DModel": return .sd3(try SD3Transformer2DModel(config: config.decode(SD3Config.self), weights: weights))
        case "FluxTransformer2DModel": return .flux(try FluxTransformer2DModel(config: config.decode(FluxConfig.self), weights: weights))
        default:
            throw WeightsError.badConfig(path: config.path, reason: "\(className) is not supported (supported: \(ModelLoader.supportedClasses.joined(separator: ", ")))")
        }
    }

    public var className: String {
        switch self {
        case .dit: return "DiTTransformer2DModel"
        case .pixart: return "PixArtTransformer2DModel"
        case .sd3: return "SD3Transformer2DModel"
        case .flux: return "FluxTransformer2DModel"
        }
    }

    /// One forward pass on inputs named as the class's diffusers `forward()` arguments.
    public func forward(inputs file: SafeTensorsFile, runtime: AttentionRuntime = SerialAttention()) throws -> Tensor {
        switch self {
        case let .dit(m): return try m.forward(DiTInputs(file: file), runtime: runtime)
        case let .pixart(m): return try m.forward(PixArtInputs(file: file), runtime: runtime)
        case let .sd3(m): return try m.forward(SD3Inputs(file: file), runtime: runtime)
        case let .flux(m): return try m.forward(FluxInputs(file: file), runtime: runtime)
        }
    }

    /// Architecture lines for `paradit inspect`.
    public var architecture: [String] {
        switch self {
        case let .dit(m):
            let c = m.config
            return ["\(c.numLayers) adaLN-zero blocks, \(c.numAttentionHeads) heads × \(c.attentionHeadDim) (width \(c.innerDim))",
                    "latent \(c.inChannels) → \(c.outputChannels) channels, patch \(c.patchSize), sample size \(c.sampleSize), \(c.numEmbedsAdaNorm) classes"]
        case let .pixart(m):
            let c = m.config
            return ["\(c.numLayers) adaLN-single blocks with cross-attention, \(c.numAttentionHeads) heads × \(c.attentionHeadDim) (width \(c.innerDim))",
                    "latent \(c.inChannels) → \(c.outputChannels) channels, patch \(c.patchSize), sample size \(c.sampleSize), captions \(c.captionChannels.map(String.init) ?? "pre-projected")",
                    "size conditioning \(c.additionalConditions ? "on" : "off"), position interpolation ×\(c.positionInterpolationScale)"]
        case let .sd3(m):
            let c = m.config
            return ["\(c.numLayers) joint (MMDiT) blocks, \(c.numAttentionHeads) heads × \(c.attentionHeadDim) (width \(c.innerDim))",
                    "latent \(c.inChannels) → \(c.outputChannels) channels, patch \(c.patchSize), positions cropped from \(c.posEmbedMaxSize ?? 0)²",
                    "text \(c.jointAttentionDim) → \(c.captionProjectionDim), pooled \(c.pooledProjectionDim), qk-norm \(c.qkNorm ?? "none"), dual attention in \(c.dualAttentionLayers.count) blocks"]
        case let .flux(m):
            let c = m.config
            return ["\(c.numLayers) double-stream + \(c.numSingleLayers) single-stream blocks, \(c.numAttentionHeads) heads × \(c.attentionHeadDim) (width \(c.innerDim))",
                    "packed latent \(c.inChannels) → \(c.outputChannels) channels, RoPE axes \(c.axesDimsRope), guidance embedding \(c.guidanceEmbeds ? "on (dev)" : "off (schnell)")",
                    "text \(c.jointAttentionDim), pooled \(c.pooledProjectionDim)"]
        }
    }
}
