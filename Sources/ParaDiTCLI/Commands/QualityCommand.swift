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

    @Option(help: "safetensors file with the prompt embeddings.")
    var promptEmbeds: String?

    @Option(help: "Denoising steps.")
    var steps: Int = 20

    @Option(help: "Guidance scale.")
    var guidance: Double = 4.5

    @Option(help: "Seed of torch's CPU generator.")
    var seed: UInt64 = 0

    @Option(help: "Image size HxW in pixels (default: the model's native size).")
    var size: ImageSize?

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

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
    }

    mutating func run() throws {
        let log = Logger(label: "paradit.quality")
        let folder = try model ?? DemoModel.directory()
        let pipeline = try TextToImagePipeline.load(directory: folder)
        let classifier = try DigitClassifier.load(pipeline: folder)
        let selection = try ClassSelection(classes: classes, perClass: perClass, sheet: false, classifier: classifier, family: pipeline.family)
        let conditioning = try promptEmbeds.map { try Conditioning(file: SafeTensorsFile(path: $0)) }
        let request = GenerationRequest(seed: seed, steps: steps, guidanceScale: guidance, height: size?.height, width: size?.width,
                                        classLabels: selection.labels)
        try pipeline.validate(request, conditioning: conditioning)
        let problem = try pipeline.transformer.problem(any: pipeline.sampler(request, conditioning: conditioning).inputs(step: 0))
        ranks = try ranks.planned(StepShape(problem))
        try ranks.check(problem, blockCount: pipeline.transformer.blockCount)
        try OutputPaths.check([json].compactMap { $0 }, inputs: [folder] + [promptEmbeds].compactMap { $0 })
        let (transformer, warmup) = (pipeline.transformer, try ranks.warmupSteps ?? ranks.config(ranks.parallel).defaultWarmupSteps)
        log.info("generating with \(ranks.parallel)")
        let results = try ranks.launch { context -> Tensor in
            try pipeline.denoise(request, conditioning: conditioning, context: context, warmupSteps: warmup)
        }
        guard let (rank, latents) = results.first, rank == 0 else { return }
        log.info("generating serially")
        let serial = try ThreadPool(threads: ranks.threads ?? ProcessInfo.processInfo.activeProcessorCount).withCurrent {
            try pipeline.denoise(request, conditioning: conditioning, denoiser: { try transformer.forward(any: $0) })
        }
        let parallelImages = try VaeImageProcessor.postprocess(pipeline.decode(latents, request: request, conditioning: conditioning))
        let serialImages = try VaeImageProcessor.postprocess(pipeline.decode(serial, request: request, conditioning: conditioning))
        let (images, reference) = (parallelImages.flatMap(\.pixels), serialImages.flatMap(\.pixels))
        let (a, b) = (latents.scalars, serial.scalars)
        let range = Double(b.max()! - b.min()!)
        let report = Report(
            model: folder, parallel: ranks.parallel.description, warmupSteps: warmup, steps: steps, seed: seed,
            latentPSNR: psnr(peak: range, mse: zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(b.count)),
            imagePSNR: psnr(peak: 255, mse: zip(images, reference).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) } / Double(reference.count)),
            maxLatentError: zip(a, b).map { Double(abs($0 - $1)) }.max() ?? 0,
            maxPixelError: zip(images, reference).map { abs(Int($0) - Int($1)) }.max() ?? 0, images: serialImages.count,
            serialAccuracy: try classifier?.accuracy(serialImages, labels: request.classLabels),
            parallelAccuracy: try classifier?.accuracy(parallelImages, labels: request.classLabels))
        print("\(report.parallel) (warm-up \(warmup)) vs serial, \(steps) steps, seed \(seed):")
        func db(_ v: Double) -> String { v >= 999 ? "∞ (identical)" : fmt(v, digits: 1) + " dB" }
        print("  latents: PSNR \(db(report.latentPSNR)), max |error| \(String(format: "%.3g", report.maxLatentError))")
        print("  image:   PSNR \(db(report.imagePSNR)), max pixel error \(report.maxPixelError)/255")
        if let s = report.serialAccuracy, let p = report.parallelAccuracy {
            print("  classifier: \(fmt(100 * p, digits: 0)) % of \(report.images) recognised (serial \(fmt(100 * s, digits: 0)) %)")
        }
        if let json { try writeJSON(report, to: json) }
    }
}

/// Peak signal-to-noise ratio in dB (infinite for identical signals, reported as 999).
func psnr(peak: Double, mse: Double) -> Double { mse == 0 ? 999 : 10 * log10(peak * peak / mse) }
