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

        Example: paradit bench parallel --preset pixart-512 --parallel ulysses=2 --trace step.json
        """)

    @Option(help: "Architecture: \(ForwardPreset.names.joined(separator: ", ")).")
    var preset: String

    @OptionGroup var ranks: RankOptions

    @Option(help: "Timed steps; the table shows their median.")
    var runs: Int = 3

    @Option(help: "Untimed warm-up steps.")
    var warmup: Int = 1

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    struct Report: Codable {
        var suite = "parallel"
        var preset: String
        var parallel: String
        var ranks: Int
        var threadsPerRank: Int
        var machine: MachineInfo
        var serialSameThreads: Timing?
        var serialAllThreads: Timing?
        var parallelStep: Timing
        var speedup: Double?
        var ulyssesBytesPerRank: Int, ulyssesFormula: Int
        var ringBytesPerRank: Int, ringFormula: Int
        var gatherBytesPerRank: Int
    }

    func validate() throws {
        guard ForwardPreset.names.contains(preset) else {
            throw ValidationError("unknown --preset \(preset); choose one of \(ForwardPreset.names.joined(separator: ", "))")
        }
        guard runs >= 1, warmup >= 0 else { throw ValidationError("--runs must be at least 1, --warmup at least 0") }
    }

    func run() throws {
        let log = Logger(label: "paradit.bench")
        let p = ForwardPreset.all.first { $0.name == preset }!
        let config = try ranks.config()
        log.info("building \(p.name) with random weights")
        let (model, _) = try p.build()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-\(preset)-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try p.inputs(path: path)
        let inputs = try ModelInputs(model: model, file: SafeTensorsFile(path: path))
        let problem = try ParallelTransformer(model: model, context: ParallelContext(config: ParallelConfig(), world: LocalCommunicator.single()))
            .problem(inputs)
        try config.validate(problem)
        let total = ranks.threads ?? ProcessInfo.processInfo.activeProcessorCount
        let perRank = max(1, total / config.worldSize)
        var serial: (same: Timing, all: Timing?)?
        if !MPICommunicator.isLaunchedByMPI {
            serial = (try timeSerial(model, inputs, threads: perRank, log: log),
                      perRank == total ? nil : try timeSerial(model, inputs, threads: total, log: log))
        }
        log.info("timing \(config) on \(config.worldSize) rank(s)")
        let steps = warmup + runs
        let results = try ranks.launch { context -> (Timing, [String: Int]) in
            let transformer = ParallelTransformer(model: model, context: context)
            var samples: [Double] = []
            for step in 0..<steps {
                try context.world.barrier()
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try transformer.forward(inputs)
                if step >= warmup { samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            }
            return (timing(samples), Dictionary(uniqueKeysWithValues: context.groups.map { ($0.axis, $0.comm.stats.totalSent / steps) }))
        }
        guard let (rank, (step, bytes)) = results.first, rank == 0 else { return }
        let (layers, hidden) = model.attentionLayers
        let shards = SequenceShards(imageTokens: problem.imageTokens, textTokens: problem.textTokens, degree: config.sequenceDegree)
        let formula = CommVolume(config: config, batch: inputs.batch, tokens: shards.exchangedTokens, hidden: hidden, layers: layers)
        let report = Report(
            preset: p.name, parallel: config.description, ranks: config.worldSize, threadsPerRank: ranks.threads.map { max(1, $0 / config.worldSize) } ?? perRank,
            machine: .current(threads: total), serialSameThreads: serial?.same, serialAllThreads: serial?.all ?? serial?.same,
            parallelStep: step, speedup: serial.map { $0.same.median / step.median },
            ulyssesBytesPerRank: bytes["ulysses"] ?? 0, ulyssesFormula: formula.ulyssesBytes,
            ringBytesPerRank: bytes["ring"] ?? 0, ringFormula: formula.ringBytes,
            gatherBytesPerRank: (bytes["sequence"] ?? 0) + (bytes["cfg"] ?? 0))
        print(p.summary + "\n")
        print(Self.table(report).render())
        if let json { try writeJSON(report, to: json) }
    }

    func timeSerial(_ model: AnyTransformer, _ inputs: ModelInputs, threads: Int, log: Logger) throws -> Timing {
        log.info("timing the serial step with \(threads) thread(s)")
        let transformer = ParallelTransformer(model: model, context: try ParallelContext(config: ParallelConfig(), world: LocalCommunicator.single()))
        var failure: Error?
        let t = ThreadPool(threads: threads).withCurrent {
            measure(warmup: warmup, runs: runs) { do { _ = try transformer.forward(inputs) } catch { failure = error } }
        }
        if let failure { throw failure }
        return t
    }

    static func table(_ r: Report) -> ResultTable {
        func mb(_ b: Int) -> String { fmt(Double(b) / 1e6, digits: 2) }
        var t = ResultTable(title: "One step, \(r.ranks) rank(s) × \(r.threadsPerRank) thread(s), median of \(r.parallelStep.runs)",
                            columns: ["parallel", "step s", "serial s (same threads)", "speedup", "serial s (all threads)",
                                      "ulysses MB/rank (formula)", "ring MB/rank (formula)", "gather MB/rank"])
        t.add([r.parallel, fmt(r.parallelStep.median, digits: 3), r.serialSameThreads.map { fmt($0.median, digits: 3) } ?? "—",
               r.speedup.map { fmt($0, digits: 2) + "×" } ?? "—", r.serialAllThreads.map { fmt($0.median, digits: 3) } ?? "—",
               "\(mb(r.ulyssesBytesPerRank)) (\(mb(r.ulyssesFormula)))", "\(mb(r.ringBytesPerRank)) (\(mb(r.ringFormula)))",
               mb(r.gatherBytesPerRank)])
        return t
    }
}
