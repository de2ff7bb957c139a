import ArgumentParser
import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// A registered family's benchmark preset (`ModelFamily.presets`): a real architecture built with
/// random weights, and the inputs of one denoising step.
struct ForwardPreset {
    let family: ModelFamily
    let preset: ModelPreset

    static var all: [ForwardPreset] {
        ModelRegistry.families.flatMap { f in f.presets.map { ForwardPreset(family: f, preset: $0) } }
    }

    static var names: [String] { all.map(\.name) }

    static func named(_ name: String) -> ForwardPreset? { all.first { $0.name == name } }

    var name: String { preset.name }
    var summary: String { preset.summary }

    /// The summary, saying so when `--frames` replaced the preset's frame count.
    func summary(frames: Int?) -> String {
        frames.map { summary + "; run with \($0) latent frame(s) (--frames)" } ?? summary
    }

    /// The model with random weights, and its parameter count.
    func build(weightsDType: WeightsDType = .stored, compute: ComputeDType = .f32)
        throws -> (any DiffusionTransformer, parameters: Int, weightBytes: Int) {
        let json = "{\"_class_name\": \"\(family.className)\", " + preset.config.drop { $0 != "{" }.dropFirst()
        let file = try ConfigFile(data: Data(json.utf8), path: "preset \(name)")
        let blockOf = try family.blockOfKey(file)
        let weights = Weights(randomSeed: 1, dtype: weightsDType, compute: compute, quantizable: { blockOf($0) != nil })
        return (try family.build(file, weights), weights.parameterCount, weights.matrixBytes)
    }

    /// Writes the step's inputs to a safetensors file and reads them back as a user's
    /// `--inputs` file is read, so the timed call is the one `paradit forward` makes.
    /// `frames` replaces a video preset's latent frame count (fresh random latents).
    func inputs(path: String, frames: Int? = nil) throws -> any TransformerInputs {
        var values = preset.inputs()
        if let frames {
            guard case let .float(latent)? = values["hidden_states"], latent.rank == 5 else {
                throw ValidationError("--frames is for video presets (wan-…); \(name) makes images")
            }
            guard (1...1024).contains(frames) else { throw ValidationError("--frames must be 1...1024, got \(frames)") }
            var shape = latent.shape
            shape[2] = frames
            values["hidden_states"] = .float(.randn(shape, seed: 1))
        }
        try writeSafeTensors(values, to: path)
        return try family.readInputs(SafeTensorsFile(path: path))
    }
}
