import ArgumentParser
import Foundation
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights

/// Options of every command that runs on ranks, and the launch on either transport: ranks as
/// threads of this process (the default), or, under mpirun, one rank per MPI process.
struct RankOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Parallel degrees, e.g. cfg=2,ulysses=2,ring=2 (or 'serial').", discussion: """
        cfg splits the cond/uncond batch; ulysses and ring split the image tokens exactly (both: \
        USP); distrifusion splits them into patches that see the others' K/V one step late (after \
        --warmup-steps exact steps); pipefusion splits the model's blocks into stages and the image \
        into --patches patches that flow through them, also one step stale. Their product is the \
        number of ranks.
        """))
    var parallel = ParallelSpec()

    @Flag(help: "Ring and torus write K/V straight into the peers' windows (one-sided puts, MPI-3 RMA under mpirun) instead of send/recv; per configuration: ring=2,one-sided.")
    var oneSided = false

    @Option(help: "Exact (synchronous) steps before a stale method uses one-step-old K/V (default: 4 for distrifusion, 1 for pipefusion).")
    var warmupSteps: Int?

    @Option(help: "PipeFusion's patches per image, bands of token rows (default: one per stage).")
    var patches: Int?

    @Option(help: ArgumentHelp("PipeFusion's blocks per stage, e.g. 10,18 (default: an even split).",
                               valueName: "counts"))
    var stageBlocks: String?

    @Option(help: "Ranks as threads of this process (default: the product of the --parallel degrees). Under mpirun the world is MPI's.")
    var world: Int?

    @Option(help: "Threads of this process, shared evenly by its ranks (default: every core; under mpirun, the cores over the ranks on this node).")
    var threads: Int?

    @Option(help: "Seconds a rank waits for its peers without progress before the run fails naming them and the operation.")
    var commTimeout: Double = 300

    @Option(help: "Write a Chrome trace of every rank's compute and communication to this JSON file (open in ui.perfetto.dev).")
    var trace: String?

    @Flag(help: "Print the bytes each rank sent, by group (ulysses, ring, distrifusion, sequence, cfg).")
    var commReport = false

    @Option(help: "Emulate this many hosts (consecutive ranks share one) whose links run at --inter-node-gbps, on either transport.")
    var emulateNodes: Int = 1

    @Option(help: "Emulated bandwidth between hosts, Gbit/s.")
    var interNodeGbps: Double = 10

    @Option(help: "Emulated latency between hosts, µs.")
    var interNodeLatencyUs: Double = 50

    @Flag(help: "Put rank r on emulated host r mod N instead of consecutive ranks on one host (the innermost axis then crosses hosts: e.g. USP with Ulysses across and Ring inside).")
    var interleavedNodes = false

    func validate() throws {
        if let world, !(1...ParallelSpec.maxRanks).contains(world) {
            throw ValidationError("--world must be 1...\(ParallelSpec.maxRanks), got \(world)")
        }
        if let threads, !(1...4096).contains(threads) { throw ValidationError("--threads must be 1...4096, got \(threads)") }
        // An emulated link slower than this is a typo, and its sleeps would look like a hang.
        guard (1...ParallelSpec.maxRanks).contains(emulateNodes), interNodeGbps > 0, interNodeGbps.isFinite,
              (0...1_000_000).contains(interNodeLatencyUs) else {
            throw ValidationError("--emulate-nodes must be 1...\(ParallelSpec.maxRanks), --inter-node-gbps a positive number "
                                  + "and --inter-node-latency-us 0...1000000 (1 s)")
        }
        guard commTimeout > 0, commTimeout <= 86_400 else {
            throw ValidationError("--comm-timeout must be 0...86400 seconds, got \(commTimeout)")
        }
        if parallel.auto {
            guard world != nil || MPICommunicator.isLaunchedByMPI else {
                throw ValidationError("--parallel auto needs --world N (the ranks to plan for), or mpirun")
            }
            return
        }
        guard let size = parallel.worldSize else {
            throw ValidationError("--parallel \(parallel) multiplies to more than \(ParallelSpec.maxRanks) ranks; give each method a small degree")
        }
        _ = try config()
        if let world, world != size {
            throw ValidationError("--world \(world) does not match --parallel \(parallel) (\(size) rank(s)); omit --world or make them agree")
        }
    }

    /// The emulated hosts of `size` ranks and their link model (nil: no emulation).
    func emulation(size: Int) throws -> (nodes: [Int], links: LinkModel)? {
        guard emulateNodes > 1 else { return nil }
        guard size % emulateNodes == 0 else {
            throw ValidationError("--emulate-nodes \(emulateNodes) must divide the \(size) ranks")
        }
        let nodes = interleavedNodes ? (0..<size).map { $0 % emulateNodes } : try Mesh.nodes(worldSize: size, nodes: emulateNodes)
        return (nodes, LinkModel(nodeOfRank: nodes, interGbps: interNodeGbps, interLatency: interNodeLatencyUs * 1e-6))
    }

    func config() throws -> ParallelConfig { try config(parallel) }

    /// Refuses, before any rank is started, a configuration the step cannot run (more sequence
    /// ranks than tokens, ulysses above the heads, PipeFusion stages the model does not have…).
    func check(_ problem: TransformerProblem, blockCount: Int) throws {
        let config = try config()
        try config.validate(problem)
        if config.pipefusion > 1 { _ = try config.stageBlockRanges(blockCount: blockCount) }
    }

    /// These options with `--parallel auto` resolved by the planner for this step's shape (printed
    /// with its reasons on the first rank); unchanged otherwise.
    func planned(_ shape: StepShape) throws -> RankOptions {
        guard parallel.auto else { return self }
        let size = MPICommunicator.isLaunchedByMPI ? try MPICommunicator.world().size : world!
        let nodes = emulateNodes > 1 ? emulateNodes
            : MPICommunicator.isLaunchedByMPI ? Set(try MPICommunicator.world().nodeOfRank()).count : 1
        let cluster = ClusterModel(worldSize: size, nodes: nodes, interGbps: interNodeGbps, interLatency: interNodeLatencyUs * 1e-6)
        let ranking = AutoPlanner.rank(shape, cluster)
        guard let best = ranking.first else {
            throw ValidationError("--parallel auto: no exact configuration of \(size) ranks fits this model (\(shape.heads) heads, batch \(shape.batch))")
        }
        let first = MPICommunicator.isLaunchedByMPI ? try MPICommunicator.world().rank == 0 : true
        if first { print(AutoPlanner.explain(ranking)) }
        var copy = self
        let c = best.config
        copy.parallel = ParallelSpec(degrees: ["cfg": c.cfg, "ulysses": c.ulysses, "ring": c.ring, "torus": c.torus].filter { $0.value > 1 })
        copy.world = nil
        copy.oneSided = oneSided && c.columns > 1
        return copy
    }

    func config(_ parallel: ParallelSpec) throws -> ParallelConfig {
        if let warmupSteps, warmupSteps < 0 { throw ValidationError("--warmup-steps cannot be negative") }
        let pipefusion = parallel.degrees["pipefusion"] ?? 1
        if pipefusion == 1 && (patches != nil || stageBlocks != nil) {
            throw ValidationError("--patches and --stage-blocks are PipeFusion's; add pipefusion=N to --parallel")
        }
        if let patches, patches < 1 { throw ValidationError("--patches must be at least 1, got \(patches)") }
        let blocks = try stageBlocks.map { text in
            try text.split(separator: ",").map { part in
                guard let n = Int(part), n >= 1 else { throw ValidationError("--stage-blocks \(text): give positive block counts separated by commas, e.g. 10,18") }
                return n
            }
        }
        var config = ParallelConfig(cfg: parallel.degrees["cfg"] ?? 1, ulysses: parallel.degrees["ulysses"] ?? 1,
                                    ring: parallel.degrees["ring"] ?? 1, distrifusion: parallel.degrees["distrifusion"] ?? 1,
                                    torus: parallel.degrees["torus"] ?? 1, pipefusion: pipefusion, patches: patches, stageBlocks: blocks)
        config.oneSided = oneSided || parallel.oneSided
        if config.oneSided && config.columns == 1 {
            throw ValidationError("--one-sided serves ring and torus; --parallel \(parallel) has neither")
        }
        return config
    }

    /// Under mpirun with pipefusion, the blocks this process's stage runs: it loads only those
    /// weights. nil otherwise (ranks that are threads share one whole model).
    func stageBlocksOfThisProcess(pipelineDirectory: String) throws -> Range<Int>? {
        let config = try config(parallel)
        guard MPICommunicator.isLaunchedByMPI, config.pipefusion > 1 else { return nil }
        let blocks = try ModelRegistry.blockCount(config: ConfigFile(directory: (pipelineDirectory as NSString).appendingPathComponent("transformer")))
        let world = try MPICommunicator.world()
        let stage = try config.mesh(worldSize: world.size).coordinate(of: world.rank, along: .pipefusion)
        return try config.stageBlockRanges(blockCount: blocks)[stage]
    }

    /// Runs `body` on every rank of this process; returns the results of its ranks (all of them
    /// on the local transport, this process's one under MPI) and writes the trace and report.
    func launch<R>(_ spec: ParallelSpec? = nil, _ body: @escaping (ParallelContext) throws -> R) throws -> [(rank: Int, value: R)] {
        let config = try config(spec ?? parallel)
        if !MPICommunicator.isLaunchedByMPI || (try? MPICommunicator.world().rank) == 0 { warnAboutBLAS() }
        let tracer = trace.map { _ in Tracer() }
        let results: [(Int, R, [(String, Int)])]
        if MPICommunicator.isLaunchedByMPI {
            let comm = try MPICommunicator.world()
            comm.tracer = tracer
            comm.timeout = commTimeout
            let nodes = try comm.nodeOfRank()
            let onNode = nodes.filter { $0 == nodes[comm.rank] }.count
            let pool = ThreadPool(threads: threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / onNode))
            do {
                let emulated = try emulation(size: comm.size)
                comm.links = emulated?.links
                let context = try ParallelContext(config: config, world: comm, nodeOfRank: emulated?.nodes ?? nodes, tracer: tracer)
                let value = try pool.withCurrent { try body(context) }
                try context.releaseWindows()
                results = [(comm.rank, value, context.groups.map { ($0.axis, $0.comm.stats.totalSent) })]
            } catch {
                comm.abort("\(error)")
            }
            if let trace, let tracer { try tracer.write(to: Tracer.path(trace, rank: comm.rank)) }
        } else {
            let size = spec == nil ? world ?? config.worldSize : config.worldSize
            let perRank = max(1, (threads ?? ProcessInfo.processInfo.activeProcessorCount) / size)
            let box = BodyBox(body)
            let emulated = try emulation(size: size)
            results = try LocalWorld.run(size: size, threadsPerRank: perRank, timeout: commTimeout, tracer: tracer,
                                         links: emulated?.links) { comm in
                let context = try ParallelContext(config: config, world: comm, nodeOfRank: emulated?.nodes, tracer: tracer)
                let value = try box.body(context)
                try context.releaseWindows()
                return BodyBox.Result(value: (comm.rank, value, context.groups.map { ($0.axis, $0.comm.stats.totalSent) }))
            }.map(\.value)
            if let trace, let tracer { try tracer.write(to: trace) }
        }
        if commReport {
            for (rank, _, groups) in results {
                let parts = groups.map { "\($0.0) \(fmt(Double($0.1) / 1e6, digits: 3)) MB" }
                print("rank \(rank) sent: \(parts.isEmpty ? "nothing" : parts.joined(separator: ", "))")
            }
        }
        return results.map { ($0.0, $0.1) }
    }
}

/// Carries a rank body (which only reads shared models and inputs) to the rank threads.
struct BodyBox<R>: @unchecked Sendable {
    let body: (ParallelContext) throws -> R
    init(_ body: @escaping (ParallelContext) throws -> R) { self.body = body }

    struct Result: @unchecked Sendable {
        let value: (Int, R, [(String, Int)])
    }
}
