import ArgumentParser
import Foundation
import Logging
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// A real text encoder architecture, built with random weights.
struct EncoderPreset {
    let name: String, summary: String, config: String
    /// Tokens a pipeline gives it.
    let tokens: Int

    static let all = [
        EncoderPreset(
            name: "clip-l", summary: "CLIP ViT-L/14 text tower (SD3, Flux): 12 layers × 768, 123 M",
            config: """
            {"architectures": ["CLIPTextModelWithProjection"], "hidden_size": 768, "intermediate_size": 3072,
             "num_hidden_layers": 12, "num_attention_heads": 12, "projection_dim": 768, "hidden_act": "quick_gelu"}
            """, tokens: 77),
        EncoderPreset(
            name: "clip-g", summary: "OpenCLIP bigG/14 text tower (SD3): 32 layers × 1280, 695 M",
            config: """
            {"architectures": ["CLIPTextModelWithProjection"], "hidden_size": 1280, "intermediate_size": 5120,
             "num_hidden_layers": 32, "num_attention_heads": 20, "projection_dim": 1280, "hidden_act": "gelu"}
            """, tokens: 77),
        EncoderPreset(
            name: "t5-xxl", summary: "T5 v1.1 XXL encoder (PixArt, SD3, Flux): 24 layers × 4096, 64 heads, 4.76 B",
            config: """
            {"architectures": ["T5EncoderModel"], "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24,
             "num_heads": 64, "feed_forward_proj": "gated-gelu", "vocab_size": 32128}
            """, tokens: 512),
    ]
    static var names: [String] { all.map(\.name) }
}

struct BenchEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Time a real text encoder architecture (random weights) on one prompt batch; report peak memory.",
        discussion: """
        Presets: \(EncoderPreset.all.map { "\n  \($0.name): \($0.summary)" }.joined())

        Weights are Float32 (4 bytes per parameter: T5-XXL needs about 19 GB). The batch is a prompt \
        and its negative, padded to the pipelines' length (CLIP 77, T5 512 as Flux; --tokens to change).

        Example: paradit bench encode --preset clip-g --runs 3 --json clip-g.json
        """)

    @Option(help: "Architecture: \(EncoderPreset.names.joined(separator: ", ")).")
    var preset: String

    @Option(help: "Tokens per prompt (default: the preset's pipeline length).")
    var tokens: Int?

    @Option(help: "Prompts per batch (2: a prompt and its negative).")
    var batch: Int = 2

    @Option(help: "Threads (default: every core).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Timed runs; the table shows their median.")
    var runs: Int = 3

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @OptionGroup var weightsOption: WeightsOption

    struct Report: Codable {
        var suite = "encode"
        var preset: String
        var machine: MachineInfo
        var parameters: Int
        var tokens: Int, batch: Int
        var buildSeconds: Double
        var timing: Timing
        var peakMemoryBytes: Int
    }

    func validate() throws {
        guard EncoderPreset.names.contains(preset) else {
            let choices = EncoderPreset.names.joined(separator: ", ")
            throw ValidationError("unknown --preset \(preset); choose one of \(choices)")
        }
        if weightsOption.dtype == .int8Dynamic {
            throw ValidationError("text encoders take int8-dynamic as weight-only int8: use --weights-dtype int8")
        }
        guard threads >= 1, runs >= 1, batch >= 1, (tokens ?? 1) >= 1 else {
            throw ValidationError("--threads, --runs, --batch and --tokens must be at least 1")
        }
    }

    func run() throws {
        let log = Logger(label: "paradit.bench")
        let p = EncoderPreset.all.first { $0.name == preset }!
        let length = tokens ?? p.tokens
        let file = try ConfigFile(data: Data(p.config.utf8), path: "preset \(p.name)")
        let report: Report = try ThreadPool(threads: threads).withCurrent {
            log.info("building \(p.name) with random weights")
            let start = Date(), weights = Weights(randomSeed: 1, dtype: weightsOption.dtype)
            let ids = (0..<batch).map { b in (0..<length).map { ($0 * 7919 + b * 104_729) % 32_000 } }
            let encode: () throws -> Void
            if file.className == "T5EncoderModel" {
                let model = try T5EncoderModel(config: file.decode(T5Config.self), weights: weights)
                encode = { _ = try model(ids: ids) }
            } else {
                let model = try CLIPTextModel(config: file.decode(CLIPTextConfig.self), weights: weights,
                                              projection: true)
                guard length <= model.config.maxPositionEmbeddings else {
                    throw ValidationError(
                        "--tokens \(length): CLIP takes at most \(model.config.maxPositionEmbeddings)")
                }
                encode = { _ = try model(ids: ids) }
            }
            let built = Date().timeIntervalSince(start)
            var failure: Error?
            let timing = measure(warmup: 0, runs: runs) {
                log.info("encoding")
                do { try encode() } catch { failure = error }
            }
            if let failure { throw failure }
            return Report(preset: p.name, machine: .current(threads: threads), parameters: weights.parameterCount,
                          tokens: length, batch: batch, buildSeconds: built, timing: timing,
                          peakMemoryBytes: peakMemoryBytes())
        }
        let title = "Text encoder, random \(weightsOption.dtype.rawValue) weights (\(threads) threads), "
            + "batch \(batch) × \(length) tokens"
        var table = ResultTable(title: title,
                                columns: ["preset", "parameters", "build (s)", "encode (s, median)", "peak RSS"])
        table.add([p.name, fmt(Double(report.parameters) / 1e6) + " M",
                   fmt(report.buildSeconds, digits: 1), fmt(report.timing.median, digits: 3),
                   fmt(Double(report.peakMemoryBytes) / 1_073_741_824, digits: 2) + " GiB"])
        print(p.summary + "\n")
        print(table.render())
        if let json { try writeJSON(report, to: json) }
    }
}
