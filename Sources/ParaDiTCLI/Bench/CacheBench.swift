import ArgumentParser
import Foundation
import ParaDiTDiffusion
import ParaDiTParallel
import ParaDiTTensor

struct BenchCache: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Time whole generations with step caches against the uncached one, with what each costs.",
        discussion: """
        A step cache pays off over a generation, not one step, so this bench times the denoising \
        loop of a whole generation (the demo model by default: 10 images per digit) uncached and \
        with each --cache, alternating them in every round. The speedup is the median over rounds \
        of uncached / cached time within the round; PSNR compares with the uncached latents and \
        images, and "recognised" is the pipeline's classifier's share (pipelines with one).

        Example: paradit bench cache --cache fbcache:0.1 --cache teacache:0.1 --parallel ulysses=2 --runs 3
        """)

    @Option(help: "Diffusers pipeline folder (default: the digits demo, models/digits-dit).")
    var model: String?

    @Option(help: "Step caches to time (fbcache[:T], teacache[:T]); repeat for several.")
    var cache: [CacheSpec] = [CacheSpec("fbcache")!, CacheSpec("teacache")!]

    @Option(help: "Denoising steps.")
    var steps: Int = 25

    @Option(help: "Images per class (a pipeline with a classifier; others use their default class).")
    var perClass: Int = 10

    @Option(help: "Timed rounds (every configuration once per round); the table shows medians.")
    var runs: Int = 3

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @OptionGroup var ranks: RankOptions

    struct Row: Codable {
        var cache: String
        var stepsSkipped: Double
        var seconds: Timing
        var speedup: Double
        var latentPSNR, imagePSNR: Double
        var recognised: Double?
    }

    struct Report: Codable {
        var machine: MachineInfo
        var model, parallel: String
        var steps, images, runs: Int
        var rows: [Row]
    }

    func validate() throws {
        guard (1...100).contains(runs), (1...10_000).contains(steps) else { throw ValidationError("--runs must be 1...100 and --steps 1...10000") }
        guard !cache.isEmpty else { throw ValidationError("give at least one --cache") }
    }

    func run() throws {
        let folder = try model ?? DemoModel.directory()
        let pipeline = try TextToImagePipeline.load(directory: folder)
        let classifier = try DigitClassifier.load(pipeline: folder)
        let selection = try ClassSelection(classes: [], perClass: perClass, sheet: false, classifier: classifier, family: pipeline.family)
        let request = GenerationRequest(seed: 0, steps: steps, guidanceScale: 4.5, height: nil, width: nil, classLabels: selection.labels)
        try pipeline.validate(request, conditioning: nil)
        let problem = try pipeline.transformer.problem(any: pipeline.sampler(request, conditioning: nil).inputs(step: 0))
        let options = try ranks.planned(StepShape(problem))
        try options.check(problem, blockCount: pipeline.transformer.blockCount)
        try OutputPaths.check([json].compactMap { $0 }, inputs: [folder])
        let warmup = try options.warmupSteps ?? options.config(options.parallel).defaultWarmupSteps
        // One generation: (seconds of the denoising loop, latents, steps skipped) on the first rank.
        func generate(_ spec: CacheSpec?) throws -> (Double, Tensor, Double)? {
            let start = Date()
            let results = try options.launch { context -> (Tensor, Double) in
                let stepCache = spec.map { StepCache($0, steps: request.steps) }
                let latents = try pipeline.denoise(request, conditioning: nil, context: context, warmupSteps: warmup, cache: stepCache)
                return (latents, stepCache?.skipped ?? 0)
            }
            guard let (rank, (latents, skipped)) = results.first, rank == 0 else { return nil }
            return (Date().timeIntervalSince(start), latents, skipped)
        }
        let configurations: [CacheSpec?] = [nil] + cache
        var seconds = Array(repeating: [Double](), count: configurations.count)
        var outcome: [(Tensor, Double)?] = Array(repeating: nil, count: configurations.count)
        for round in 0..<runs {
            for (i, spec) in configurations.enumerated() {
                guard let (s, latents, skipped) = try generate(spec) else { return }
                seconds[i].append(s)
                if outcome[i] == nil { outcome[i] = (latents, skipped) }
            }
            print("round \(round + 1)/\(runs): " + configurations.indices.map { "\(configurations[$0]?.description ?? "none") "
                + fmt(seconds[$0].last!, digits: 2) + " s" }.joined(separator: ", "))
        }
        let reference = outcome[0]!.0
        let referenceImages = try VaeImageProcessor.postprocess(pipeline.decode(reference, request: request, conditioning: nil))
        var rows: [Row] = []
        for i in configurations.indices {
            let (latents, skipped) = outcome[i]!
            let images = try VaeImageProcessor.postprocess(pipeline.decode(latents, request: request, conditioning: nil))
            rows.append(Row(cache: configurations[i]?.description ?? "none", stepsSkipped: skipped, seconds: timing(seconds[i]),
                            speedup: median(zip(seconds[0], seconds[i]).map { $0 / $1 }),
                            latentPSNR: latentPSNR(latents, reference), imagePSNR: imagePSNR(images, referenceImages),
                            recognised: try classifier?.accuracy(images, labels: request.classLabels)))
        }
        var table = ResultTable(title: "Step caches, \(folder), \(options.parallel), \(steps) steps, \(request.classLabels.count) images",
                                columns: ["cache", "skipped", "loop (s)", "speedup", "latent PSNR", "image PSNR", "recognised"])
        for r in rows {
            table.add([r.cache, "\(stepCount(r.stepsSkipped))/\(steps)", fmt(r.seconds.median, digits: 2), fmt(r.speedup, digits: 2) + "×",
                       dB(r.latentPSNR), dB(r.imagePSNR), r.recognised.map { fmt(100 * $0, digits: 0) + " %" } ?? "—"])
        }
        print(table.render())
        if let json {
            try writeJSON(Report(machine: .current(threads: options.threads ?? ProcessInfo.processInfo.activeProcessorCount),
                                 model: folder, parallel: options.parallel.description, steps: steps,
                                 images: request.classLabels.count, runs: runs, rows: rows), to: json)
        }
    }
}
