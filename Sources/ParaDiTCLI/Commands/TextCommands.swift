import ArgumentParser
import Foundation
import Logging
import ParaDiTDiffusion
import ParaDiTTensor
import ParaDiTTokenizers
import ParaDiTWeights

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a pipeline folder's text encoders on prompts and write the embeddings.",
        discussion: """
        Writes what diffusers' encode_prompt returns, named as the pipeline's arguments \
        (prompt_embeds, negative_prompt_embeds, the attention masks for PixArt, the pooled \
        embeddings for SD3 and Flux): a file `generate --prompt-embeds` and diffusers both take.

        Example: paradit encode --model sd3 --prompt "a lighthouse at dusk" --output lighthouse.safetensors
        """)

    @Option(help: "Diffusers pipeline folder with its tokenizer*/ and text_encoder*/.")
    var model: String

    @OptionGroup var text: PromptOptions

    @Option(help: "Guidance scale the embeddings are for: above 1 the negative prompt is encoded too.")
    var guidance: Double = 4.5

    @Option(help: "The safetensors file to write.")
    var output: String

    @OptionGroup var weights: WeightsOption

    func validate() throws {
        guard text.hasText else {
            throw ValidationError("give --prompt (or --prompt-file) to encode")
        }
        guard text.promptEmbeds == nil else {
            throw ValidationError("--prompt-embeds is what encode writes; give --output")
        }
    }

    func run() throws {
        try OutputPaths.check([output], inputs: [model] + text.inputs)
        let c = try text.conditioning(folder: model, guidance: guidance, weights: weights.dtype,
                                      log: Logger(label: "paradit.encode"))!
        var tensors: [String: SafeTensorsValue] = ["prompt_embeds": .float(c.promptEmbeds)]
        let named: [(String, Tensor?)] = [("negative_prompt_embeds", c.negativePromptEmbeds),
                                          ("pooled_prompt_embeds", c.pooledPromptEmbeds),
                                          ("negative_pooled_prompt_embeds", c.negativePooledPromptEmbeds)]
        for case let (name, t?) in named { tensors[name] = .float(t) }
        // Masks as the tokenizers give them: int64.
        for case let (name, m?) in [("prompt_attention_mask", c.promptAttentionMask),
                                    ("negative_prompt_attention_mask", c.negativePromptAttentionMask)] {
            tensors[name] = .int64(m.scalars.map { Int64($0) }, shape: m.shape)
        }
        try OutputPaths.allOrNothing([(output, { try writeSafeTensors(tensors, to: output) })])
        print("wrote \(output): " + tensors.keys.sorted().joined(separator: ", ")
              + "; prompt_embeds \(c.promptEmbeds.shape)")
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids a pipeline's tokenizer gives texts (one JSON line per text).",
        discussion: """
        Pads and truncates as the pipelines call the tokenizer (padding to --max-length), so you see \
        what the text encoder sees: when an image ignores a word, check whether it was cut off.

        Examples:
          paradit tokenize --tokenizer sd3/tokenizer "a photo of a cat"
          paradit tokenize --tokenizer pixart/tokenizer --max-length 300 --no-padding "a red fox"
        """)

    @Option(help: "A tokenizer folder as diffusers saves it (tokenizer/, tokenizer_2/, …).")
    var tokenizer: String

    @Option(help: "Length to pad and truncate to (default: the folder's model_max_length, else CLIP 77, T5 512).")
    var maxLength: Int?

    @Flag(help: "The bare ids: no padding, no truncation.")
    var noPadding = false

    @Argument(help: "The texts.")
    var texts: [String]

    func validate() throws {
        if texts.isEmpty { throw ValidationError("give at least one text") }
        if let maxLength, maxLength < 1 { throw ValidationError("--max-length must be at least 1, got \(maxLength)") }
    }

    func run() throws {
        let t = try loadTokenizer(folder: tokenizer)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for text in texts {
            let e = noPadding
                ? t.encode(text, maxLength: .max, pad: false)
                : t.encode(text, maxLength: maxLength ?? t.defaultMaxLength)
            if e.truncated > 0 {
                let warning = "warning: \(e.truncated) tokens truncated from \"\(text.prefix(40))\"\n"
                FileHandle.standardError.write(Data(warning.utf8))
            }
            let line = try encoder.encode(["input_ids": e.ids, "attention_mask": e.attentionMask] as [String: [Int]])
            print(String(decoding: line, as: UTF8.self))
        }
    }
}
