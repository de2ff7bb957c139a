import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTTokenizers
import ParaDiTWeights

/// The text side of a request: `--prompt` (several make a batch), `--negative-prompt` (one for
/// every prompt; the pipeline's default, "", when nil), `--max-sequence-length` (the T5 length;
/// nil: the pipeline's default).
public struct TextPrompt: Sendable {
    public var prompts: [String]
    public var negativePrompt: String?
    public var maxSequenceLength: Int?

    public init(prompts: [String], negativePrompt: String? = nil, maxSequenceLength: Int? = nil) {
        (self.prompts, self.negativePrompt, self.maxSequenceLength) = (prompts, negativePrompt, maxSequenceLength)
    }
}

/// What a pipeline's text encoders made of a prompt: the conditioning, as `--prompt-embeds` would
/// give it, and the warnings diffusers logs (prompts truncated to a tokenizer's length).
public struct PromptEncoding {
    public var conditioning: Conditioning
    public var warnings: [String]
}

/// Tokenizers and text encoders of a pipeline folder, read as their families call them. Each
/// encoder is loaded when used and released after, so they are never all resident at once.
struct TextEncoders {
    let folder: PipelineFolder
    let weightsDType: WeightsDType
    var warnings: [String] = []

    /// The component folder `name` (a tokenizer or text encoder), or an error naming it.
    func component(_ name: String) throws -> String {
        let path = folder.path(name)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw WeightsError.cannotOpen(path: path,
                                          reason: "missing: \(folder.className) needs its \(name)/ to encode prompts "
                                              + "(save the pipeline with its text encoders, or pass --prompt-embeds)")
        }
        return path
    }

    /// Whether model_index.json lists the component (SD3 may be saved without its T5).
    func has(_ name: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: folder.path("model_index.json")),
              let index = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
        return (index[name] as? [Any])?.first is String
    }

    /// `texts` tokenized as the pipelines call the tokenizer: padded and truncated to `length`.
    mutating func tokens(_ texts: [String], tokenizer name: String,
                         length: Int) throws -> (ids: [[Int]], mask: [[Int]]) {
        let tokenizer = try loadTokenizer(folder: try component(name))
        let encodings = texts.map { tokenizer.encode($0, maxLength: length) }
        for (text, e) in zip(texts, encodings) where e.truncated > 0 {
            warnings.append("\(name): the prompt \"\(text.prefix(40))…\" was truncated: "
                            + "\(e.truncated) tokens past the limit of \(length)")
        }
        return (encodings.map(\.ids), encodings.map(\.attentionMask))
    }

    /// CLIP text encoder `encoder` on `texts` through `tokenizer` (77 tokens, as every pipeline).
    mutating func clip(_ texts: [String], tokenizer: String, encoder: String) throws -> CLIPTextOutput {
        let model = try CLIPTextModel(directory: try component(encoder), weightsDType: weightsDType)
        return try model(ids: tokens(texts, tokenizer: tokenizer, length: model.config.maxPositionEmbeddings).ids)
    }

    /// T5 encoder `encoder` on `texts` padded to `length`; with `masked` the padding is masked in
    /// the encoder (PixArt) and the mask returned.
    mutating func t5(_ texts: [String], tokenizer: String, encoder: String, length: Int,
                     masked: Bool) throws -> (Tensor, Tensor?) {
        let (ids, mask) = try tokens(texts, tokenizer: tokenizer, length: length)
        let model = try T5EncoderModel(directory: try component(encoder), weightsDType: weightsDType)
        let out = try model(ids: ids, mask: masked ? mask : nil)
        return (out, masked ? Tensor(shape: [ids.count, length], values: mask.joined().map(Float.init)) : nil)
    }
}

extension TextToImagePipeline {
    /// Runs the folder's tokenizers and text encoders on `prompt` as the diffusers pipeline's
    /// `encode_prompt` does; `guidance` above 1 encodes the negative prompt too.
    public static func encodePrompt(folder: PipelineFolder, _ prompt: TextPrompt, guidance: Double,
                                    weightsDType: WeightsDType = .stored) throws -> PromptEncoding {
        guard let encode = folder.family.encodePrompt else {
            throw WeightsError.badInput(name: "prompt", reason: "\(folder.className) is class-conditional: use --class")
        }
        guard !prompt.prompts.isEmpty else { throw WeightsError.badInput(name: "prompt", reason: "no prompt given") }
        if let n = prompt.maxSequenceLength, n < 1 || n > 4096 {
            throw WeightsError.badInput(name: "max-sequence-length", reason: "\(n) is outside 1…4096")
        }
        // Text encoders take int8-dynamic as weight-only INT8: T5's activations carry outlier channels
        // (why T5 overflows in float16) that one 8-bit scale per token would flatten.
        var encoders = TextEncoders(folder: folder, weightsDType: weightsDType == .int8Dynamic ? .int8 : weightsDType)
        let conditioning = try encode(&encoders, prompt, guidance)
        return PromptEncoding(conditioning: conditioning, warnings: encoders.warnings)
    }
}
