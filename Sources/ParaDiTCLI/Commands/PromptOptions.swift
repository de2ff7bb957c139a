import ArgumentParser
import Foundation
import Logging
import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights

/// Where a text-conditioned generation's conditioning comes from: prompts run through the pipeline
/// folder's tokenizers and text encoders, or embeddings made elsewhere.
struct PromptOptions: ParsableArguments {
    @Option(help: """
        Text prompt; repeat for a batch. The pipeline folder's tokenizers and text encoders encode it as \
        diffusers' encode_prompt does. Used as given: PixArt's caption cleaning (bs4/ftfy in diffusers) is \
        not applied.
        """)
    var prompt: [String] = []

    @Option(help: "A UTF-8 text file of prompts, one per line (empty lines skipped), added to --prompt.")
    var promptFile: String?

    @Option(help: "Negative prompt for classifier-free guidance (default \"\", as diffusers; Flux takes none).")
    var negativePrompt: String?

    @Option(help: "T5 tokens (default: the pipeline's own: PixArt-α 120, PixArt-Σ 300, SD3 256, Flux 512).")
    var maxSequenceLength: Int?

    @Option(help: """
        safetensors file with the prompt embeddings instead (names as the pipeline's arguments; \
        `paradit encode` writes one).
        """)
    var promptEmbeds: String?

    func validate() throws {
        if promptEmbeds != nil && (!prompt.isEmpty || promptFile != nil) {
            throw ValidationError("give --prompt (or --prompt-file) or --prompt-embeds, not both")
        }
        if prompt.contains(where: { $0.allSatisfy(\.isWhitespace) }) {
            throw ValidationError("--prompt is empty; give some text")
        }
        if let n = maxSequenceLength, n < 1 {
            throw ValidationError("--max-sequence-length must be at least 1, got \(n)")
        }
    }

    var hasText: Bool { !prompt.isEmpty || promptFile != nil }

    /// The prompts of --prompt and --prompt-file; invalid UTF-8 is refused.
    func prompts() throws -> [String] {
        guard let promptFile else { return prompt }
        guard let data = FileManager.default.contents(atPath: promptFile) else {
            throw ValidationError("--prompt-file \(promptFile): cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("--prompt-file \(promptFile): not valid UTF-8 text; save it as UTF-8")
        }
        let lines = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.allSatisfy(\.isWhitespace) }
        guard !lines.isEmpty else { throw ValidationError("--prompt-file \(promptFile): no prompt in it") }
        return prompt + lines
    }

    /// The conditioning of this run (nil: a class-conditional one), encoded before the transformer
    /// is loaded so the text encoders and the transformer are never resident together. Under
    /// mpirun only rank 0 runs the encoders (T5-XXL outweighs most transformers) and broadcasts
    /// the embeddings; the local transport encodes once for all its ranks anyway.
    func conditioning(folder: String, guidance: Double, weights: WeightsDType = .stored,
                      log: Logger) throws -> Conditioning? {
        if let promptEmbeds { return try Conditioning(file: SafeTensorsFile(path: promptEmbeds)) }
        guard hasText else { return nil }
        guard MPICommunicator.isLaunchedByMPI, let comm = try? MPICommunicator.world(), comm.size > 1 else {
            return try encode(folder: folder, guidance: guidance, weights: weights, log: log)
        }
        // The other ranks wait while rank 0 loads and runs the encoders: allow them the time.
        let timeout = comm.timeout
        comm.timeout = max(timeout, 3600)
        defer { comm.timeout = timeout }
        let mine = comm.rank == 0
            ? Result { try encode(folder: folder, guidance: guidance, weights: weights, log: log) } : nil
        return try shareConditioning(mine, over: comm)
    }

    func encode(folder: String, guidance: Double, weights: WeightsDType, log: Logger) throws -> Conditioning {
        let (pipeline, texts) = (try PipelineFolder(directory: folder), try prompts())
        log.info("encoding \(texts.count) prompt(s) with \(pipeline.className)'s text encoders")
        let encoded = try TextToImagePipeline.encodePrompt(
            folder: pipeline,
            TextPrompt(prompts: texts, negativePrompt: negativePrompt, maxSequenceLength: maxSequenceLength),
            guidance: guidance, weightsDType: weights)
        for warning in encoded.warnings { log.warning("\(warning)") }
        return encoded.conditioning
    }

    /// Files this run reads, which no output may overwrite.
    var inputs: [String] { [promptEmbeds, promptFile].compactMap { $0 } }
}
