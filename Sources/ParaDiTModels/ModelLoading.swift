import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// Opens a diffusers model folder (config.json + safetensors) strictly: the config must name a
/// supported class, every tensor the model needs must be there with the right shape, and every
/// tensor in the checkpoint must be used.
public enum ModelLoader {
    public static let supportedClasses = ["DiTTransformer2DModel", "PixArtTransformer2DModel", "SD3Transformer2DModel",
                                          "FluxTransformer2DModel"]

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

    public static func loadSD3(directory: String) throws -> SD3Transformer2DModel {
        try load(directory: directory, className: "SD3Transformer2DModel") { file, weights in
            try SD3Transformer2DModel(config: try file.decode(SD3Config.self), weights: weights)
        }
    }

    public static func loadFlux(directory: String) throws -> FluxTransformer2DModel {
        try load(directory: directory, className: "FluxTransformer2DModel") { file, weights in
            try FluxTransformer2DModel(config: try file.decode(FluxConfig.self), weights: weights)
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

/// A float input of the given rank whose first dimension is the batch.
func batched(_ file: SafeTensorsFile, _ name: String, batch: Int, rank: Int) throws -> Tensor {
    let t = try file.tensor(name)
    guard t.rank == rank, t.size(0) == batch else {
        throw WeightsError.wrongShape(key: name, expected: [batch] + Array(repeating: -1, count: rank - 1), found: t.shape)
    }
    return t
}

extension FluxInputs {
    /// Reads hidden_states (packed), encoder_hidden_states, pooled_projections, timestep, img_ids,
    /// txt_ids (2-D, or 3-D with a batch dimension of 1 as older pipelines passed them) and guidance.
    public init(file: SafeTensorsFile) throws {
        hiddenStates = try file.tensor("hidden_states")
        guard hiddenStates.rank == 3 else {
            throw WeightsError.wrongShape(key: "hidden_states", expected: [-1, -1, -1], found: hiddenStates.shape)
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
        guard let e = file.entries[name] else { throw WeightsError.missingTensor(key: name, file: file.path) }
        let shape = e.shape.count == 3 && e.shape[0] == 1 ? Array(e.shape.dropFirst()) : e.shape
        guard shape.count == 2, shape[1] == 3 else { throw WeightsError.wrongShape(key: name, expected: [-1, 3], found: e.shape) }
        return Tensor(shape: shape, values: try file.values(name).map { Float($0) })
    }
}
