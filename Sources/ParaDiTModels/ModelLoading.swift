import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// Opens a diffusers model folder (config.json + safetensors) strictly: the config must name a
/// supported class, every tensor the model needs must be there with the right shape, and every
/// tensor in the checkpoint must be used.
public enum ModelLoader {
    public static let supportedClasses = ["DiTTransformer2DModel"]

    public static func loadDiT(directory: String) throws -> DiTTransformer2DModel {
        let file = try ConfigFile(directory: directory)
        guard file.className == "DiTTransformer2DModel" else {
            throw WeightsError.badConfig(path: file.path, reason: "_class_name is \(file.className), expected DiTTransformer2DModel")
        }
        let weights = Weights(checkpoint: try Checkpoint(directory: directory))
        let model = try DiTTransformer2DModel(config: try file.decode(DiTConfig.self), weights: weights)
        try weights.checkAllUsed()
        return model
    }
}

extension DiTInputs {
    /// Reads `hidden_states`, `timestep` and `class_labels` as diffusers names them.
    public init(file: SafeTensorsFile) throws {
        hiddenStates = try file.tensor("hidden_states")
        guard hiddenStates.rank == 4 else {
            throw WeightsError.wrongShape(key: "hidden_states", expected: [-1, -1, -1, -1], found: hiddenStates.shape)
        }
        let batch = hiddenStates.size(0)
        timestep = try Self.perSample(file, "timestep", batch: batch).map { Float($0) }
        classLabels = try Self.perSample(file, "class_labels", batch: batch).map { Int($0) }
    }

    /// A per-sample input: one value per batch item, or a scalar broadcast to all.
    static func perSample(_ file: SafeTensorsFile, _ name: String, batch: Int) throws -> [Double] {
        let values = try file.values(name)
        if values.count == 1 { return Array(repeating: values[0], count: batch) }
        guard values.count == batch else {
            throw WeightsError.wrongShape(key: name, expected: [batch], found: file.entries[name]!.shape)
        }
        return values
    }
}
