import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// A diffusers pipeline class the engine runs, registered once: the transformer class it drives
/// and its recipe (how its `__call__` conditions, batches, guides and steps). Code outside
/// `Pipelines/Families/` reaches a pipeline only through this entry.
public struct PipelineFamily: Sendable {
    /// The `_class_name`s of `model_index.json` this entry runs.
    public let pipelineClasses: [String]
    public let transformerClass: String
    /// The class labels a class-conditional pipeline uses when none are given; nil when the
    /// pipeline is conditioned on text.
    public let defaultClassLabels: [Int]?
    let recipe: @Sendable (any DiffusionTransformer, LatentScale, GenerationRequest, Conditioning?) throws
        -> DenoisingRecipe
    /// The pipeline's `encode_prompt`: its tokenizers and text encoders on a prompt (nil: class-conditional).
    let encodePrompt: (@Sendable (inout TextEncoders, TextPrompt, Double) throws -> Conditioning)?

    init(pipelineClasses: [String], transformerClass: String, defaultClassLabels: [Int]? = nil,
         encodePrompt: (@Sendable (inout TextEncoders, TextPrompt, Double) throws -> Conditioning)? = nil,
         recipe: @escaping @Sendable (any DiffusionTransformer, LatentScale, GenerationRequest, Conditioning?) throws
             -> DenoisingRecipe) {
        (self.pipelineClasses, self.transformerClass, self.defaultClassLabels) = (pipelineClasses, transformerClass, defaultClassLabels)
        (self.encodePrompt, self.recipe) = (encodePrompt, recipe)
    }

    public var isClassConditional: Bool { defaultClassLabels != nil }
}

/// The pipeline classes ParaDiT runs, by the `_class_name` of `model_index.json`.
public enum PipelineRegistry {
    static let families = [DiTRecipe.family, PixArtRecipe.family, SD3Recipe.family, FluxRecipe.family, WanRecipe.family]

    public static var pipelineClasses: [String] { families.flatMap(\.pipelineClasses).sorted() }

    /// The family running `className`, or an error listing the supported ones.
    public static func family(pipeline className: String, path: String) throws -> PipelineFamily {
        guard let family = families.first(where: { $0.pipelineClasses.contains(className) }) else {
            throw WeightsError.badConfig(path: path, reason: "\(className) is not supported (supported: \(pipelineClasses.joined(separator: ", ")))")
        }
        return family
    }
}

/// The model as the recipe's class (the pipeline checked the class name when it was built).
func cast<M: DiffusionTransformer>(_ model: any DiffusionTransformer) throws -> M {
    guard let typed = model as? M else {
        throw WeightsError.badConfig(path: "transformer", reason: "holds a \(model.className), expected \(M.self)")
    }
    return typed
}

/// The embeddings a text-conditioned pipeline needs, refusing class labels.
func textConditioning(_ conditioning: Conditioning?, request: GenerationRequest, pipeline: String) throws -> Conditioning {
    guard let conditioning else {
        throw WeightsError.badInput(name: "prompt", reason: "\(pipeline) needs --prompt (or --prompt-embeds)")
    }
    if !request.classLabels.isEmpty {
        throw WeightsError.badInput(name: "class", reason: "--class is for class-conditional pipelines; \(pipeline) takes --prompt")
    }
    return conditioning
}

/// The latent grid of a request: pixels / the VAE's factor, both multiples of `multiple`
/// (the VAE factor times the transformer's patch or packing).
/// The largest image side a request may ask for: past it no model or machine here would run, and
/// the recipes' position tables would be enormous before the memory check could refuse.
let maxImageSide = 16_384

func latentSize(_ r: GenerationRequest, native: Int, vaeScale: Int, multiple: Int) throws -> (Int, Int) {
    let (h, w) = (r.height ?? native, r.width ?? native)
    for (name, v) in [("height", h), ("width", w)] where v > maxImageSide {
        throw WeightsError.badInput(name: "size", reason: "\(name) \(v) is above \(maxImageSide) pixels; use a smaller --size")
    }
    for (name, v) in [("height", h), ("width", w)] where v < multiple || v % multiple != 0 {
        let near = max(multiple, (v / multiple) * multiple)
        throw WeightsError.badInput(name: "size", reason: "\(name) \(v) is not a positive multiple of \(multiple) (the VAE's factor \(vaeScale) × the model's patch); use e.g. \(near)")
    }
    return (h / vaeScale, w / vaeScale)
}

