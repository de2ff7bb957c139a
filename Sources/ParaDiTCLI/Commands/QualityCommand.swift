import ArgumentParser
import Foundation
import Logging
import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights

struct Quality: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure how far a parallel generation is from the serial one (PSNR, max error).",
        discussion: """
        Runs the same generation (model, conditioning, seed, steps) split as --parallel and on one \
        rank, then reports the PSNR of the parallel latents and 8-bit image against the serial ones \
        and the largest differences. Exact methods (cfg, ulysses, ring) should show float32 noise \
        (PSNR far above 100 dB); stale ones (distrifusion) show what their staleness costs, which \
        --warmup-steps trades against speed. Latent PSNR uses the serial latents' range as the peak. \
        With --weights-dtype bf16|f16|int8 the measured run holds the transformer's linear weights in \
        that type while the serial reference keeps them as stored (both take the same conditioning): \
        what the narrower weights cost, alone or together with a parallel method. \
        A pipeline with a classifier (the digits demo, the default) also reports the share of images \
        each run makes that the classifier recognises as their class.

        Example: paradit quality --model pixart --prompt-embeds e.safetensors --steps 20 --parallel distrifusion=2 --warmup-steps 1
        """)

    @Option(help: "Diffusers pipeline folder (default: the digits demo, models/digits-dit).")
    var model: String?

    @Option(name: .customLong("class"), help: "Class id for DiT; repeat for several images.")
    var classes: [Int] = []

    @Option(help: "Images per class when every class is drawn (a pipeline with a classifier, without --class).")
    var perClass: Int = 10

    @OptionGroup var text: PromptOptions

    @Option(help: "Denoising steps.")
    var steps: Int = 20

    @Option(help: "Guidance scale.")
    var guidance: Double = 4.5

    @Option(help: "Seed of torch's CPU generator.")
    var seed: UInt64 = 0

    @Option(help: "Image size HxW in pixels (default: the model's native size).")
    var size: ImageSize?

    @Option(help: "Step cache of the measured run (the serial reference runs every block): fbcache[:T] or teacache[:T].")
    var cache: CacheSpec?

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

    @OptionGroup var weights: WeightsOption
    @OptionGroup var compute: ComputeOption
    @OptionGroup var ranks: RankOptions

    struct Report: Codable {
        var model: String
        var parallel: String
        var warmupSteps: Int
        var steps: Int
        var seed: UInt64
        var latentPSNR: Double
        var imagePSNR: Double
        var maxLatentError: Double
        var maxPixelError: Int
        var images: Int
        /// Shares recognised by the pipeline's classifier as their class (pipelines with one).
        var serialAccuracy: Double?
        var parallelAccuracy: Double?
        /// The measured run's step cache, the steps it skipped, and the wall time of both denoising loops.
        var cache: String?
        var stepsSkipped: Double?
        var seconds, serialSeconds: Double
        /// The measured run's linear weights (the reference's are as stored).
        var weightsDtype: String
        var computeDtype: String
    }

    @Flag(help: "Measure every method in turn against one serial run: cfg, ulysses, ring, usp, pipefusion 2 and 4 (warm-up 0, 1, 2) and distrifusion 2 and 4 (warm-up 0, 1, 4); --json then holds a list.")
    var sweep = false

    /// The configurations of `--sweep`: the exact methods, then the stale ones over their warm-ups.
    static let sweepConfigurations: [(spec: String, warmup: Int?)] =
        ["cfg=2", "ulysses=2", "ring=2", "ulysses=2,ring=2"].map { ($0, nil) }
        + ["pipefusion=2", "pipefusion=4"].flatMap { spec in [0, 1, 2].map { (spec, $0) } }
        + ["distrifusion=2", "distrifusion=4"].flatMap { spec in [0, 1, 4].map { (spec, $0) } }

    /// What every configuration is compared on: the request and the serial run's latents and images.
    struct Reference {
        var pipeline: TextToImagePipeline
        var request: GenerationRequest
        var conditioning: Conditioning?
        var classifier: DigitClassifier?
        var latents: Tensor
        var seconds: Double
        var images: [RGBImage]
        var accuracy: Double?
    }

    func validate() throws {
        try compute.check(weights: weights)
    }

    mutating func run() throws {
        let log = Logger(label: "paradit.quality")
        let folder = try model ?? DemoModel.directory()
        let conditioning = try text.conditioning(folder: folder, guidance: guidance, log: log)
        let pipeline = try TextToImagePipeline.load(directory: folder)
        let measured = weights.dtype == .stored && compute.dtype == .f32 ? pipeline
            : try TextToImagePipeline.load(directory: folder, weightsDType: weights.dtype, compute: compute.dtype)
        let classifier = try DigitClassifier.load(pipeline: folder)
        let selection = try ClassSelection(classes: classes, perClass: perClass, sheet: false, classifier: classifier, family: pipeline.family)
        let request = GenerationRequest(seed: seed, steps: steps, guidanceScale: guidance, height: size?.height, width: size?.width,
                                        classLabels: selection.labels)
        try pipeline.validate(request, conditioning: conditioning)
        let problem = try pipeline.transformer.problem(any: pipeline.sampler(request, conditioning: conditioning).inputs(step: 0))
        var configurations = [ranks]
        if sweep {
            configurations = try Self.sweepConfigurations.map { spec, warmup in
                var options = ranks
                guard let parsed = ParallelSpec(argument: spec) else { throw ValidationError("bad sweep configuration \(spec)") }
                options.parallel = parsed
                options.warmupSteps = warmup
                return options
            }
        }
        configurations = try configurations.map { try $0.planned(StepShape(problem, compute: compute.dtype)) }
        for options in configurations {
            try options.check(problem, blockCount: pipeline.transformer.blockCount)
        }
        try OutputPaths.check([json].compactMap { $0 }, inputs: [folder] + text.inputs)
        log.info("generating serially")
        let serialStart = Date()
        let serial = try ThreadPool(threads: ranks.threads ?? ProcessInfo.processInfo.activeProcessorCount).withCurrent {
            try pipeline.denoise(request, conditioning: conditioning, denoiser: { try pipeline.transformer.forward(any: $0) })
        }
        let seconds = Date().timeIntervalSince(serialStart)
        let images = try VaeImageProcessor.postprocess(pipeline.decode(serial, request: request, conditioning: conditioning))
        let reference = Reference(pipeline: pipeline, request: request, conditioning: conditioning, classifier: classifier,
                                  latents: serial, seconds: seconds, images: images,
                                  accuracy: try classifier?.accuracy(images, labels: request.classLabels))
        var reports: [Report] = []
        for options in configurations {
            log.info("generating with \(options.parallel)")
            guard let report = try measure(options, pipeline: measured, against: reference, folder: folder) else { return }
            print(report.text)
            reports.append(report)
        }
        if let json { try sweep ? writeJSON(reports, to: json) : writeJSON(reports[0], to: json) }
    }

    /// One configuration's run against the serial reference; nil on ranks other than the first.
    func measure(_ options: RankOptions, pipeline: TextToImagePipeline, against reference: Reference, folder: String) throws -> Report? {
        let (request, conditioning) = (reference.request, reference.conditioning)
        let (warmup, cache) = (try options.warmupSteps ?? options.config(options.parallel).defaultWarmupSteps, self.cache)
        let start = Date()
        let results = try options.launch { context -> (Tensor, Double?) in
            let stepCache = cache.map { StepCache($0, steps: request.steps) }
            return (try pipeline.denoise(request, conditioning: conditioning, context: context, warmupSteps: warmup, cache: stepCache),
                    stepCache?.skipped)
        }
        let seconds = Date().timeIntervalSince(start)
        guard let (rank, (latents, skipped)) = results.first, rank == 0 else { return nil }
        let images = try VaeImageProcessor.postprocess(pipeline.decode(latents, request: request, conditioning: conditioning))
        let (pixels, referencePixels) = (images.flatMap(\.pixels), reference.images.flatMap(\.pixels))
        return Report(
            model: folder, parallel: options.parallel.description, warmupSteps: warmup, steps: steps, seed: seed,
            latentPSNR: latentPSNR(latents, reference.latents), imagePSNR: imagePSNR(images, reference.images),
            maxLatentError: zip(latents.scalars, reference.latents.scalars).map { Double(abs($0 - $1)) }.max() ?? 0,
            maxPixelError: zip(pixels, referencePixels).map { abs(Int($0) - Int($1)) }.max() ?? 0, images: images.count,
            serialAccuracy: reference.accuracy,
            parallelAccuracy: try reference.classifier?.accuracy(images, labels: request.classLabels),
            cache: cache?.description, stepsSkipped: skipped, seconds: seconds, serialSeconds: reference.seconds,
            weightsDtype: weights.dtype.rawValue, computeDtype: compute.dtype.rawValue)
    }
}

extension Quality.Report {
    var text: String {
        func db(_ v: Double) -> String { v >= 999 ? "∞ (identical)" : dB(v) }
        return "\(parallel) (warm-up \(warmupSteps))\(cache.map { ", cache \($0): \(stepCount(stepsSkipped ?? 0)) steps skipped" } ?? "")"
            + (weightsDtype == "stored" ? "" : ", \(weightsDtype) weights")
            + " vs serial, \(steps) steps, seed \(seed): \(fmt(seconds, digits: 2)) s vs \(fmt(serialSeconds, digits: 2)) s\n"
            + "  latents: PSNR \(db(latentPSNR)), max |error| \(String(format: "%.3g", maxLatentError))\n"
            + "  image:   PSNR \(db(imagePSNR)), max pixel error \(maxPixelError)/255"
            + (serialAccuracy.flatMap { s in parallelAccuracy.map { p in
                "\n  classifier: \(fmt(100 * p, digits: 0)) % of \(images) recognised (serial \(fmt(100 * s, digits: 0)) %)"
            } } ?? "")
    }
}
