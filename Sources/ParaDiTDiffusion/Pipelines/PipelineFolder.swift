import Foundation
import ParaDiTModels
import ParaDiTWeights

/// The pipeline families ParaDiT runs, by the `_class_name` of `model_index.json`.
public enum PipelineFamily: String, Sendable, CaseIterable {
    case dit, pixart, sd3, flux

    static let classes: [String: PipelineFamily] = [
        "DiTPipeline": .dit, "PixArtAlphaPipeline": .pixart, "PixArtSigmaPipeline": .pixart,
        "StableDiffusion3Pipeline": .sd3, "FluxPipeline": .flux,
    ]

    /// The transformer class the family's pipeline drives.
    var transformerClass: String {
        switch self {
        case .dit: return "DiTTransformer2DModel"
        case .pixart: return "PixArtTransformer2DModel"
        case .sd3: return "SD3Transformer2DModel"
        case .flux: return "FluxTransformer2DModel"
        }
    }
}

/// A diffusers pipeline folder as `save_pretrained` writes it: `model_index.json`, `transformer/`,
/// `vae/` and `scheduler/scheduler_config.json` (text encoders are not read: conditioning comes
/// as embeddings). Every part is checked before anything heavy is loaded.
public struct PipelineFolder {
    public let directory: String
    public let className: String
    public let family: PipelineFamily

    public init(directory: String) throws {
        let index = (directory as NSString).appendingPathComponent("model_index.json")
        guard let data = FileManager.default.contents(atPath: index) else {
            throw WeightsError.cannotOpen(path: index, reason: "no such file: --model must be a diffusers pipeline folder (model_index.json, transformer/, vae/, scheduler/)")
        }
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        guard let name = object?["_class_name"] as? String else {
            throw WeightsError.badConfig(path: index, reason: "no \"_class_name\" saying which pipeline this is")
        }
        guard let family = PipelineFamily.classes[name] else {
            throw WeightsError.badConfig(path: index, reason: "\(name) is not supported (supported: \(PipelineFamily.classes.keys.sorted().joined(separator: ", ")))")
        }
        for part in ["transformer/config.json", "vae/config.json", "scheduler/scheduler_config.json"] {
            let path = (directory as NSString).appendingPathComponent(part)
            guard FileManager.default.fileExists(atPath: path) else {
                throw WeightsError.cannotOpen(path: path, reason: "missing: a \(name) folder needs transformer/, vae/ and scheduler/ as diffusers saves them")
            }
        }
        (self.directory, className, self.family) = (directory, name, family)
    }

    /// A pipeline built in memory (the random-weight presets): its class and a description in
    /// place of a folder.
    public init(className: String, description: String) throws {
        guard let family = PipelineFamily.classes[className] else {
            throw WeightsError.badConfig(path: description, reason: "\(className) is not a supported pipeline")
        }
        (directory, self.className, self.family) = (description, className, family)
    }

    public func path(_ part: String) -> String { (directory as NSString).appendingPathComponent(part) }
}
