import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// Opens a diffusers model folder (config.json + safetensors) strictly: the config must name a
/// supported class, every tensor the model needs must be there with the right shape, and every
/// tensor in the checkpoint must be used.
public enum ModelLoader {
    public static let supportedClasses = ["DiTTransformer2DModel", "PixArtTransformer2DModel"]

    public static func loadDiT(directory: String) throws -> DiTTransformer2DModel {
        try load(directory: directory, className: "DiTTransformer2DModel") { file, weights in
            try DiTTransformer2DModel(config: try file.decode(DiTConfig.self), weights: weights)
        }
    }

    public static func loadPixArt(directory: String) throws -> PixArtTransformer2DModel {
        try load(directory: directory, className: "PixArtTransformer2DModel") { file, weights in
            try PixArtTransformer2DModel(config: try file.decode(PixArtConfig.self), weights: weights)
        }
    }

    static func load<M>(directory: String, className: String, _ build: (ConfigFile, Weights) throws -> M) throws -> M {
        let file = try ConfigFile(directory: directory)
        guard file.className == className else {
            throw WeightsError.badConfig(path: file.path, reason: "_class_name is \(file.className), expected \(className)")
        }
        let weights = Weights(checkpoint: try Checkpoint(directory: directory))
        let model = try build(file, weights)
        try weights.checkAllUsed()
        return model
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

/// A per-sample input: one value per batch item, or a scalar broadcast to all.
func perSample(_ file: SafeTensorsFile, _ name: String, batch: Int) throws -> [Double] {
    let values = try file.values(name)
    if values.count == 1 { return Array(repeating: values[0], count: batch) }
    guard values.count == batch else {
        throw WeightsError.wrongShape(key: name, expected: [batch], found: file.entries[name]!.shape)
    }
    return values
}

/// A latent input [B, C, H, W].
func latent(_ file: SafeTensorsFile, _ name: String) throws -> Tensor {
    let t = try file.tensor(name)
    guard t.rank == 4 else { throw WeightsError.wrongShape(key: name, expected: [-1, -1, -1, -1], found: t.shape) }
    return t
}

extension PixArtInputs {
    /// Reads hidden_states, encoder_hidden_states, timestep, and the optional encoder_attention_mask,
    /// resolution and aspect_ratio.
    public init(file: SafeTensorsFile) throws {
        hiddenStates = try latent(file, "hidden_states")
        let b = hiddenStates.size(0)
        encoderHiddenStates = try file.tensor("encoder_hidden_states")
        guard encoderHiddenStates.rank == 3, encoderHiddenStates.size(0) == b else {
            throw WeightsError.wrongShape(key: "encoder_hidden_states", expected: [b, -1, -1], found: encoderHiddenStates.shape)
        }
        timestep = try perSample(file, "timestep", batch: b).map { Float($0) }
        if file.entries["encoder_attention_mask"] != nil {
            let values = try file.values("encoder_attention_mask")
            let lt = encoderHiddenStates.size(1)
            guard values.count == b * lt else {
                throw WeightsError.wrongShape(key: "encoder_attention_mask", expected: [b, lt], found: file.entries["encoder_attention_mask"]!.shape)
            }
            encoderAttentionMask = Tensor(shape: [b, lt], values: values.map { Float($0) })
        }
        if file.entries["resolution"] != nil { resolution = try file.values("resolution").map { Float($0) } }
        if file.entries["aspect_ratio"] != nil { aspectRatio = try file.values("aspect_ratio").map { Float($0) } }
    }
}
