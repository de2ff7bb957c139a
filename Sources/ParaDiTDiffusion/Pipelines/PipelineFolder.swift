import Foundation
import ParaDiTModels
import ParaDiTWeights

/// A diffusers pipeline folder as `save_pretrained` writes it: `model_index.json`, `transformer/`,
/// `vae/` and `scheduler/scheduler_config.json`, and for prompts its `tokenizer*/` and
/// `text_encoder*/` (read by `TextEncoders` when a prompt is encoded). Every part is checked before
/// anything heavy is loaded.
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
        let family = try PipelineRegistry.family(pipeline: name, path: index)
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
        let family = try PipelineRegistry.family(pipeline: className, path: description)
        (directory, self.className, self.family) = (description, className, family)
    }

    public func path(_ part: String) -> String { (directory as NSString).appendingPathComponent(part) }
}
