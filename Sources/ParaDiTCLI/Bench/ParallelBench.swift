import ArgumentParser
import Foundation
import Logging
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights

struct BenchParallel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parallel",
        abstract: "Time one denoising step split over ranks against the serial step, with bytes sent.",
        discussion: """
        Presets: \(ForwardPreset.all.map { "\n  \($0.name): \($0.summary)" }.joined())

        The model is built with random weights. The same build first times the serial step on \
        one rank with the threads one parallel rank gets (the speedup column: what adding ranks \
        buys) and with every thread of the process, then the --parallel step; each figure is the \
        median of --runs after --warmup. Bytes are what each rank sent per step in the attention \
        exchanges, beside the formulas (Ulysses 4·(U−1)/U·p·hs/N, Ring 2·(R−1)/R·p·hs/U per layer), \
        and in the gathers of the output. Under mpirun only the parallel step is timed. \
        benchmarks/torch_sp.py times diffusers' own Ulysses on the same config.

        Example: paradit bench parallel --preset pixart-512 --parallel ulysses=2 --also ring=2 --also cfg=2 --trace step.json
        """)

    @Option(help: "Architecture: \(ForwardPreset.names.joined(separator: ", ")).")
    var preset: String

    @Option(help: "Latent frames of a video preset (default: the preset's; each is 4 video frames).")
    var frames: Int?

    @OptionGroup var ranks: RankOptions
    @OptionGroup var weights: WeightsOption
    @OptionGroup var compute: ComputeOption

    @Option(help: "Further --parallel configurations to time in the same run, against the same serial figures.")
    var also: [ParallelSpec] = []

    @Flag(help: "Time only the parallel steps (no serial run, no speedup).")
    var skipSerial = false

    @Option(help: "Timed steps; the table shows their median.")
    var runs: Int = 3

    @Option(help: "Untimed warm-up steps (stale methods also leave their synchronous steps untimed, and PipeFusion the first stale one, which fills its pipe).")
    var warmup: Int = 1

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    struct Report: Codable {
        var suite = "parallel"
        var preset: String
        var weightsDtype: String, computeDtype: String
        var machine: MachineInfo
        /// Emulated hosts and their links (nil: none).
        var emulatedNodes: Int?, interNodeGbps: Double?, interNodeLatencyUs: Double?, interleavedNodes: Bool?
        var serialSameThreads: Timing?
        var serialAllThreads: Timing?
        var results: [Result]
    }

    /// One configuration's figures.
    struct Result: Codable {
        var parallel: String
        var ranks: Int
        var threadsPerRank: Int
        /// Synchronous steps of a stale method (nil for the exact ones).
        var warmupSteps: Int?
        var parallelStep: Timing
        /// Seconds rank 0 spent per timed step blocked in attention exchanges (the trace's "wait" spans).
        var waitPerStep: Double?
        var speedup: Double?
        var ulyssesBytesPerRank: Int, ulyssesFormula: Int
        var ringBytesPerRank: Int, ringFormula: Int
        var distrifusionBytesPerRank: Int, distrifusionFormula: Int
        /// What stage 0 sends per step (PipeFusion).
        var pipefusionBytesPerRank: Int, pipefusionFormula: Int
        var gatherBytesPerRank: Int
        /// Bytes one rank received over emulated inter-node links per step.
        var interNodeBytesPerRank: Int
    }

    func validate() throws {
        guard ForwardPreset.names.contains(preset) else {
            throw ValidationError("unknown --preset \(preset); choose one of \(ForwardPreset.names.joined(separator: ", "))")
        }
        guard runs >= 1, warmup >= 0 else { throw ValidationError("--runs must be at least 1, --warmup at least 0") }
        try compute.check(weights: weights)
    }

    mutating func run() throws {
        let log = Logger(label: "paradit.bench")
        let p = ForwardPreset.named(preset)!
        log.info("building \(p.name) with random weights")
        let (model, _, _) = try p.build(weightsDType: weights.dtype, compute: compute.dtype)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-\(preset)-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let inputs = try p.inputs(path: path, frames: frames)
        let problem = try model.problem(any: inputs)
        ranks = try ranks.planned(StepShape(problem, compute: compute.dtype))
        let specs = [ranks.parallel] + also
        let configs = try specs.map { try ranks.config($0) }
        for config in configs { try config.validate(problem) }
        let total = ranks.threads ?? ProcessInfo.processInfo.activeProcessorCount
        let perRank = max(1, total / configs.map(\.worldSize).max()!)
        var serial: (same: Timing, all: Timing?)?
        if !MPICommunicator.isLaunchedByMPI && !skipSerial {
            serial = (try timeSerial(model, inputs, threads: perRank, log: log),
                      perRank == total ? nil : try timeSerial(model, inputs, threads: total, log: log))
        }
        var results: [Result] = []
        for (spec, config) in zip(specs, configs) {
            // Only rank 0 gets figures; the other MPI ranks go on to the next configuration.
            if let r = try timeParallel(spec, config, model: model, inputs: inputs, problem: problem, log: log) { results.append(r) }
        }
        guard !results.isEmpty else { return }
        results = results.map { r in var r = r; r.speedup = serial.map { $0.same.median / r.parallelStep.median }; return r }
        let emulated = ranks.emulateNodes > 1
        let report = Report(preset: p.name, weightsDtype: weights.dtype.rawValue, computeDtype: compute.dtype.rawValue,
                            machine: .current(threads: total),
                            emulatedNodes: emulated ? ranks.emulateNodes : nil, interNodeGbps: emulated ? ranks.interNodeGbps : nil,
                            interNodeLatencyUs: emulated ? ranks.interNodeLatencyUs : nil, interleavedNodes: emulated ? ranks.interleavedNodes : nil,
                            serialSameThreads: serial?.same,
                            serialAllThreads: serial?.all ?? serial?.same, results: results)
        let precision = (weights.dtype == .stored ? "" : "; weights \(weights.dtype.rawValue)")
            + (compute.dtype == .f32 ? "" : "; compute \(compute.dtype.rawValue)")
        print(p.summary(frames: frames) + precision + "\n")
        print(Self.table(report).render())
        if let json { try writeJSON(report, to: json) }
    }

    /// Times one configuration; nil on ranks other than 0.
    func timeParallel(_ spec: ParallelSpec, _ config: ParallelConfig, model: any DiffusionTransformer,
                      inputs: any TransformerInputs, problem: TransformerProblem, log: Logger) throws -> Result? {
        log.info("timing \(config) on \(config.worldSize) rank(s)")
        // Stale methods are timed on stale steps: after their synchronous ones and, for PipeFusion,
        // after the first stale step, in which the pipe fills.
        let stale = ranks.warmupSteps ?? config.defaultWarmupSteps
        let untimed = config.distrifusion * config.pipefusion > 1 ? max(warmup, stale + (config.pipefusion > 1 ? 1 : 0)) : warmup
        let steps = untimed + runs
        let results = try ranks.launch(spec) { context -> (Timing, Double, [String: Int]) in
            var samples: [Double] = [], waitBefore = 0.0
            if config.pipefusion > 1 {
                let loop = try FixedPatchLoop(inputs: inputs, grid: problem.grid, steps: steps, patches: config.patchCount)
                try PipeFusion(model: model, context: context, warmupSteps: stale).run(loop) { i, _, s in
                    if i == untimed { waitBefore = context.waitSeconds }
                    if i > untimed { samples.append(s) }
                }
            } else {
                let transformer = ParallelTransformer(model: model, context: context, warmupSteps: stale)
                for step in 0..<steps {
                    if step == untimed { waitBefore = context.waitSeconds }
                    try context.world.barrier()
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = try transformer.forward(inputs)
                    if step >= untimed { samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
                }
                try transformer.finish()
            }
            var bytes = Dictionary(uniqueKeysWithValues: context.groups.map { ($0.axis, $0.comm.stats.totalSent / steps) })
            bytes["inter-node"] = context.groups.reduce(0) { $0 + $1.comm.stats.interNodeBytesReceived } / steps
            return (timing(samples), (context.waitSeconds - waitBefore) / Double(runs), bytes)
        }
        guard let (rank, (step, wait, bytes)) = results.first, rank == 0 else { return nil }
        // Rank 0 is on PipeFusion's first stage, which runs only its blocks' attention layers.
        let stage = try config.pipefusion > 1 ? config.stageBlockRanges(blockCount: model.blockCount)[0].count : model.blockCount
        let formula = CommVolume(config: config, problem: problem,
                                 layers: problem.attentionLayers * stage / model.blockCount,
                                 compute: model.compute)
        return Result(
            parallel: config.description, ranks: config.worldSize,
            threadsPerRank: max(1, (ranks.threads ?? ProcessInfo.processInfo.activeProcessorCount) / config.worldSize),
            warmupSteps: config.distrifusion * config.pipefusion > 1 ? stale : nil, parallelStep: step, waitPerStep: wait, speedup: nil,
            ulyssesBytesPerRank: bytes["ulysses"] ?? 0, ulyssesFormula: formula.ulyssesBytes,
            ringBytesPerRank: (bytes["ring"] ?? 0) + (bytes["torus"] ?? 0), ringFormula: formula.ringBytes + formula.torusBytes,
            distrifusionBytesPerRank: bytes["distrifusion"] ?? 0, distrifusionFormula: formula.distrifusionBytes,
            pipefusionBytesPerRank: bytes["pipefusion"] ?? 0, pipefusionFormula: formula.pipefusionBytes,
            gatherBytesPerRank: (bytes["sequence"] ?? 0) + (bytes["cfg"] ?? 0), interNodeBytesPerRank: bytes["inter-node"] ?? 0)
    }

    func timeSerial(_ model: any DiffusionTransformer, _ inputs: any TransformerInputs, threads: Int, log: Logger) throws -> Timing {
        log.info("timing the serial step with \(threads) thread(s)")
        var failure: Error?
        let t = ThreadPool(threads: threads).withCurrent {
            measure(warmup: warmup, runs: runs) { do { _ = try model.forward(any: inputs) } catch { failure = error } }
        }
        if let failure { throw failure }
        return t
    }

    static func table(_ r: Report) -> ResultTable {
        func mb(_ b: Int) -> String { fmt(Double(b) / 1e6, digits: 2) }
        let serial = r.serialSameThreads.map { "serial \(fmt($0.median, digits: 3)) s on 1 rank" } ?? "no serial run"
        let all = r.serialAllThreads.map { ", \(fmt($0.median, digits: 3)) s with all threads" } ?? ""
        let hosts = r.emulatedNodes.map { n in ", \(n) emulated hosts\(r.interleavedNodes == true ? " (interleaved)" : "") at \(r.interNodeGbps!) Gbit/s, \(r.interNodeLatencyUs!) µs" } ?? ""
        var t = ResultTable(title: "One step (\(serial) with the threads of one parallel rank\(all)), median of \(r.results.first?.parallelStep.runs ?? 0)\(hosts)",
                            columns: ["parallel", "ranks × threads", "step s", "wait s (rank 0)", "speedup", "ulysses MB/rank (formula)",
                                      "ring/torus MB/rank (formula)", "distrifusion MB/rank (formula)",
                                      "pipefusion MB/stage (formula)", "gather MB/rank",
                                      "inter-node MB/rank"])
        for x in r.results {
            t.add([x.parallel + (x.warmupSteps.map { " (warm-up \($0))" } ?? ""), "\(x.ranks) × \(x.threadsPerRank)",
                   fmt(x.parallelStep.median, digits: 3), x.waitPerStep.map { fmt($0, digits: 3) } ?? "—", x.speedup.map { fmt($0, digits: 2) + "×" } ?? "—",
                   "\(mb(x.ulyssesBytesPerRank)) (\(mb(x.ulyssesFormula)))", "\(mb(x.ringBytesPerRank)) (\(mb(x.ringFormula)))",
                   "\(mb(x.distrifusionBytesPerRank)) (\(mb(x.distrifusionFormula)))",
                   "\(mb(x.pipefusionBytesPerRank)) (\(mb(x.pipefusionFormula)))", mb(x.gatherBytesPerRank),
                   r.emulatedNodes == nil ? "—" : mb(x.interNodeBytesPerRank)])
        }
        return t
    }
}
