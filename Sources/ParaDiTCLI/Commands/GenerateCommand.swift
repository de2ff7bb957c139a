import ArgumentParser
import Foundation
import Logging
import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate images with a diffusers pipeline folder (or the shipped digits demo).",
        discussion: """
        --model is a pipeline folder as diffusers saves it (model_index.json, transformer/, vae/, \
        scheduler/, and for --prompt its tokenizer*/ and text_encoder*/) of \
        \(PipelineRegistry.pipelineClasses.joined(separator: ", ")). A text-conditioned pipeline takes \
        --prompt (its text encoders run once, before the transformer loads) or the conditioning as \
        embeddings (--prompt-embeds FILE.safetensors, as `paradit encode` writes it); DiT takes ImageNet \
        class ids (--class 207 --class 88). A seed gives the image diffusers gives for the same seed and \
        prompt (torch's CPU generator).

        Without --model the shipped demo runs (models/digits-dit: a DiT trained on scikit-learn's \
        digits, tools/train_demo.py): a contact sheet of the ten digits, one row per class, and the \
        share its classifier recognises. A pipeline with a classifier/ folder does the same.

        Examples:
          paradit generate
          paradit generate --class 3 --output three.png
          paradit generate --parallel cfg=2,ulysses=2
          paradit generate --model pixart --prompt "a cat on a sofa" --size 512x512 --output cat.png
          paradit generate --model sd3 --prompt "a lighthouse at dusk" --negative-prompt "blurry" --parallel cfg=2,ulysses=2
          paradit generate --model pixart --prompt-embeds cat.safetensors --parallel cfg=2,ulysses=2
          mpirun -np 2 paradit generate --model flux --prompt "a red fox" --parallel ring=2
        """)

    @Option(help: "Diffusers pipeline folder (default: the digits demo, models/digits-dit).")
    var model: String?

    @Option(name: .customLong("class"), help: "Class id for DiT (ImageNet's, or a digit for the demo); repeat for several images.")
    var classes: [Int] = []

    @Option(help: "Images per class when every class is drawn (the demo without --class).")
    var perClass: Int = 8

    @Flag(help: "Write one contact sheet, a labelled row per class, instead of one file per image.")
    var sheet = false

    @OptionGroup var text: PromptOptions

    @Option(help: "Denoising steps (default: 20; \(DemoModel.steps) for the demo).")
    var steps: Int?

    @Option(help: "Guidance scale (classifier-free; Flux-dev embeds it). 1 disables CFG.")
    var guidance: Double = 4.5

    @Option(help: "Seed of torch's CPU generator.")
    var seed: UInt64 = 0

    @Option(help: "Step cache: fbcache[:T] skips blocks 1… while block 0's residual changed by less than T (relative L1) since the last computed step; teacache[:T] skips every block while the accumulated change of block 0's modulated input stays below T. Default T 0.1; 0 never skips. Under PipeFusion each patch decides on its own change.")
    var cache: CacheSpec?

    @Option(help: "Image size HxW in pixels (default: the model's native size).")
    var size: ImageSize?

    @Option(help: """
        Video frames of a video pipeline (Wan: 4k+1, default 81). Its --output: clip.mp4 (H.264 through ffmpeg), \
        clip.png (animated PNG) or a folder name without an extension (frame_0000.png …), at 16 fps.
        """)
    var frames: Int?

    @Option(help: "Where to write the image or sheet (PNG, 8-bit RGB); several images get _1, _2… before .png.")
    var output: String = "paradit.png"

    @Option(help: "Also write the final latents to this safetensors file (tensor \"latents\").")
    var saveLatents: String?

    @Option(help: "Also write a machine-readable summary (timings, memory, outputs) to this JSON file.")
    var json: String?

    @OptionGroup var weights: WeightsOption
    @OptionGroup var compute: ComputeOption
    @OptionGroup var ranks: RankOptions

    func validate() throws {
        try compute.check(weights: weights)
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard guidance.isFinite, guidance >= 0 else { throw ValidationError("--guidance must be a finite number, 0 or more; got \(guidance)") }
        if model == nil && (text.promptEmbeds != nil || text.hasText) {
            throw ValidationError("--prompt and --prompt-embeds need --model (the demo is DiT: use --class)")
        }
    }

    mutating func run() throws {
        let log = Logger(label: "paradit.generate")
        let start = Date()
        let folder = try model ?? DemoModel.directory()
        let conditioning = try text.conditioning(folder: folder, guidance: guidance, weights: weights.dtype, log: log)
        log.info("loading \(folder)")
        let pipeline = try TextToImagePipeline.load(directory: folder, keepingBlocks: ranks.stageBlocksOfThisProcess(pipelineDirectory: folder),
                                                    weightsDType: weights.dtype, compute: compute.dtype)
        let classifier = try DigitClassifier.load(pipeline: folder)
        let selection = try ClassSelection(classes: classes, perClass: perClass, sheet: sheet, classifier: classifier, family: pipeline.family)
        let request = GenerationRequest(
            seed: seed, steps: steps ?? (model == nil ? DemoModel.steps : 20), guidanceScale: guidance, height: size?.height,
            width: size?.width, classLabels: selection.labels, frames: frames)
        try pipeline.validate(request, conditioning: conditioning)
        let problem = try pipeline.transformer.problem(any: pipeline.sampler(request, conditioning: conditioning).inputs(step: 0))
        ranks = try ranks.planned(StepShape(problem, compute: compute.dtype))
        try ranks.check(problem, blockCount: pipeline.transformer.blockCount)
        let video = try pipeline.videoVAE.map { _ in try VideoOutput(path: output) }
        try video?.check()
        if frames != nil && video == nil {
            throw ValidationError("--frames is for video pipelines; \(pipeline.folder.className) makes images")
        }
        let decodes = video == nil
        try OutputPaths.check([output, saveLatents, json].compactMap { $0 }, inputs: [folder] + text.inputs)
        let loaded = Date()
        let warmup = try ranks.warmupSteps ?? ranks.config(ranks.parallel).defaultWarmupSteps
        let cache = self.cache
        let results = try ranks.launch { context -> (Tensor, [Double], Tensor?, Double, Double?) in
            let progress = Progress(total: request.steps, enabled: context.world.rank == 0)
            let stepCache = cache.map { StepCache($0, steps: request.steps) }
            var seconds: [Double] = []
            let latents = try pipeline.denoise(request, conditioning: conditioning, context: context, warmupSteps: warmup,
                                               cache: stepCache) { i, n, s in
                seconds.append(s)
                progress.update(step: i, of: n, seconds: seconds, skipped: stepCache?.skipped)
            }
            progress.finish()
            // Patch-parallel decode over every rank when the latent has a row for each (DistVAE).
            let (z, scaling) = try pipeline.vaeInput(latents, request: request, conditioning: conditioning)
            let rowAxis = decodes ? 2 : 3
            guard context.world.size > 1 && z.size(rowAxis) >= context.world.size else {
                return (latents, seconds, nil, 0, stepCache?.skipped)
            }
            if context.world.rank == 0 { log.info("decoding on \(context.world.size) ranks") }
            let start = Date()
            let image = decodes ? try pipeline.decoder().decode(latents: z, scaling: scaling, comm: context.world)
                : try pipeline.decodeVideo(latents, comm: context.world)
            return (latents, seconds, image, Date().timeIntervalSince(start), stepCache?.skipped)
        }
        guard let (rank, (latents, seconds, parallelImage, parallelDecode, skipped)) = results.first, rank == 0 else { return }
        if video != nil {
            if parallelImage == nil { log.info("decoding video") }
            let clips = try VideoOutput.frames(parallelImage ?? pipeline.decodeVideo(latents))
            return try writeVideo(clips, latents: latents, summary: "\(request.steps) steps, "
                                  + "\(fmt(median(seconds), digits: 2)) s/step (median), \(ranks.parallel)")
        }
        let denoised = Date()
        if parallelImage == nil { log.info("decoding") }
        let decoded = try parallelImage ?? pipeline.decode(latents, request: request, conditioning: conditioning)
        let generated = try VaeImageProcessor.postprocess(decoded)
        let accuracy = try classifier?.accuracy(generated, labels: request.classLabels)
        let images = try selection.sheet.map { rows in
            [try ContactSheet.make(generated, columns: rows.columns, labels: rows.classes.map(String.init))]
        } ?? generated
        let paths = images.indices.map { images.count == 1 ? output : OutputPaths.numbered(output, $0 + 1) }
        let summary = Summary(pipeline: pipeline.folder.className, model: folder, parallel: ranks.parallel.description,
                              seed: seed, steps: request.steps, guidance: guidance, width: images[0].width, height: images[0].height,
                              stepSeconds: seconds, medianStepSeconds: median(seconds), loadSeconds: loaded.timeIntervalSince(start),
                              decodeSeconds: parallelDecode + Date().timeIntervalSince(denoised), totalSeconds: Date().timeIntervalSince(start),
                              peakMemoryBytes: peakMemoryBytes(), transformerParameters: pipeline.transformerParameters.held,
                              transformerParametersTotal: pipeline.transformerParameters.total,
                              transformerWeightBytes: pipeline.transformerWeightBytes,
                              weightsDtype: weights.dtype.rawValue, computeDtype: compute.dtype.rawValue,
                              outputs: paths,
                              images: generated.count, classifierAccuracy: accuracy, cache: cache?.description,
                              stepsSkipped: skipped)
        var writes: [(String, () throws -> Void)] = zip(images, paths).map { image, path in
            (path, { try PNGWriter.write(image, to: path) })
        }
        if let saveLatents { writes.append((saveLatents, { try writeSafeTensors(["latents": .float(latents)], to: saveLatents) })) }
        if let json { writes.append((json, { try writeJSON(summary, to: json) })) }
        try OutputPaths.allOrNothing(writes)
        print(summary.text)
    }

    /// Writes each sample's clip to `output` (numbered when several) and the latents, all or nothing.
    func writeVideo(_ clips: [[RGBImage]], latents: Tensor, summary: String) throws {
        let paths = clips.indices.map { clips.count == 1 ? output : OutputPaths.numbered(output, $0 + 1) }
        var writes: [(String, () throws -> Void)] = try zip(clips, paths).map { clip, path in
            let target = try VideoOutput(path: path)
            return (path, { try target.write(clip) })
        }
        if let saveLatents {
            writes.append((saveLatents, { try writeSafeTensors(["latents": .float(latents)], to: saveLatents) }))
        }
        try OutputPaths.allOrNothing(writes)
        print("video → \(paths.joined(separator: ", ")) (\(clips[0].count) frames of \(clips[0][0].width)×\(clips[0][0].height) "
              + "at \(VideoOutput.fps) fps); " + summary)
    }

    struct Summary: Codable {
        var pipeline, model, parallel: String
        var seed: UInt64
        var steps: Int
        var guidance: Double
        var width, height: Int
        var stepSeconds: [Double]
        var medianStepSeconds, loadSeconds, decodeSeconds, totalSeconds: Double
        var peakMemoryBytes: Int
        /// Transformer parameters this process held (a PipeFusion stage under mpirun holds its blocks').
        var transformerParameters, transformerParametersTotal: Int
        /// Bytes this process's transformer linear weights keep resident, and the type they are held in.
        var transformerWeightBytes: Int
        var weightsDtype: String
        var computeDtype: String
        var outputs: [String]
        var images: Int
        /// The share of images the pipeline's classifier recognises as their class (pipelines with one).
        var classifierAccuracy: Double?
        /// The step cache and the steps it skipped (the others ran every block).
        var cache: String?
        var stepsSkipped: Double?

        var text: String {
            (images > outputs.count ? "\(images) images on a sheet" : "image\(outputs.count > 1 ? "s" : "")")
                + " → \(outputs.joined(separator: ", ")) (\(width)×\(height))\n"
                + (classifierAccuracy.map { "classifier: \(fmt(100 * $0, digits: 0)) % recognised as their class\n" } ?? "")
                + "\(steps) steps, \(fmt(medianStepSeconds, digits: 2)) s/step (median), total \(fmt(totalSeconds, digits: 1)) s "
                + "(load \(fmt(loadSeconds, digits: 1)) s, decode \(fmt(decodeSeconds, digits: 1)) s), "
                + "peak memory \(fmt(Double(peakMemoryBytes) / 1_073_741_824, digits: 2)) GiB, \(parallel)"
                + (cache.map { c in "\ncache \(c): \(stepCount(Double(steps) - (stepsSkipped ?? 0))) steps computed, \(stepCount(stepsSkipped ?? 0)) skipped" } ?? "")
                + (transformerParameters < transformerParametersTotal
                   ? "\nthis stage holds \(transformerParameters) of the transformer's \(transformerParametersTotal) parameters "
                     + "(\(fmt(100 * Double(transformerParameters) / Double(transformerParametersTotal), digits: 1)) %)"
                   : "")
                + "\ntransformer linear weights: \(fmt(Double(transformerWeightBytes) / 1_048_576, digits: 2)) MiB resident "
                + "(\(computeDtype == "bf16" ? "bf16, bf16 compute" : weightsDtype))"
        }
    }
}

/// `--size 512x768`: height × width in pixels.
struct ImageSize: ExpressibleByArgument {
    var height: Int, width: Int
    init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts[0] > 0, parts[1] > 0 else { return nil }
        (height, width) = (parts[0], parts[1])
    }
}

/// Step progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise.
final class Progress {
    let total: Int, enabled: Bool
    let terminal = isatty(2) != 0

    init(total: Int, enabled: Bool) { (self.total, self.enabled) = (total, enabled) }

    func update(step: Int, of n: Int, seconds: [Double], skipped: Double? = nil) {
        guard enabled else { return }
        let perStep = seconds.reduce(0, +) / Double(seconds.count), eta = perStep * Double(n - step)
        let line = "step \(step)/\(n)  \(fmt(perStep, digits: 2)) s/step  ETA \(fmt(eta, digits: 0)) s"
            + (skipped.map { "  (\(stepCount(Double(step) - $0)) computed, \(stepCount($0)) cached)" } ?? "")
        if terminal {
            let width = 24, filled = width * step / n
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\(bar) \(line)\u{1B}[K".utf8))
        } else {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    func finish() { if enabled && terminal { FileHandle.standardError.write(Data("\n".utf8)) } }
}

/// The process's peak resident memory.
func peakMemoryBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}
