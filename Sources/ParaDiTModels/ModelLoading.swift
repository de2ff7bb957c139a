import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// Typed loading of one model class: the folder's config must name that class.
public enum ModelLoader {
    public static let supportedClasses = ["DiTTransformer2DModel", "PixArtTransformer2DModel", "SD3Transformer2DModel",
                                          "FluxTransformer2DModel"]

    public static func loadDiT(directory: String) throws -> DiTTransformer2DModel {
        try load(directory, "DiTTransformer2DModel") { if case let .dit(m) = $0 { m } else { nil } }
    }

    public static func loadPixArt(directory: String) throws -> PixArtTransformer2DModel {
        try load(directory, "PixArtTransformer2DModel") { if case let .pixart(m) = $0 { m } else { nil } }
    }

    public static func loadSD3(directory: String) throws -> SD3Transformer2DModel {
        try load(directory, "SD3Transformer2DModel") { if case let .sd3(m) = $0 { m } else { nil } }
    }

    public static func loadFlux(directory: String) throws -> FluxTransformer2DModel {
        try load(directory, "FluxTransformer2DModel") { if case let .flux(m) = $0 { m } else { nil } }
    }

    /// Checks the config's class before any weight is read, then loads and unwraps the model.
    static func load<M>(_ directory: String, _ className: String, _ unwrap: (AnyTransformer) -> M?) throws -> M {
        let file = try ConfigFile(directory: directory)
        guard file.className == className else {
            throw WeightsError.badConfig(path: file.path, reason: "_class_name is \(file.className), expected \(className)")
        }
        let model = try AnyTransformer.load(directory: directory)
        guard let typed = unwrap(model) else {
            throw WeightsError.badConfig(path: directory, reason: "holds a \(model.className), expected \(className)")
        }
        return typed
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
    guard file.entries[name] != nil else { throw WeightsError.badInput(name: name, reason: "missing from \(file.path)") }
    let values = try file.values(name)
    if values.count == 1 { return Array(repeating: values[0], count: batch) }
    guard values.count == batch else {
        throw WeightsError.badInput(name: name, reason: "has shape \(file.entries[name]!.shape), expected one value per sample (\(batch)) or one for all")
    }
    return values
}

/// A latent input [B, C, H, W].
func latent(_ file: SafeTensorsFile, _ name: String) throws -> Tensor {
    let t = try file.tensor(name)
    guard t.rank == 4 else { throw WeightsError.badInput(name: name, reason: "has shape \(t.shape), expected a latent [B, C, H, W]") }
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
        throw WeightsError.badInput(name: name, reason: "has shape \(t.shape), expected \(rank) dimensions, the first the batch (\(batch))")
    }
    return t
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

/// Fails unless `size` is `expected`, naming the input and its dimension.
func expectDim(_ name: String, _ what: String, _ size: Int, _ expected: Int) throws {
    guard size == expected else { throw WeightsError.badInput(name: name, reason: "has \(size) \(what), the model expects \(expected)") }
}
