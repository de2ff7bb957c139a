import ArgumentParser
import Foundation
import Logging
import ParaDiTDistributed
import ParaDiTTensor

struct BenchComm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "comm",
        abstract: "All-gather, all-to-all and ring send/recv bandwidth and latency between ranks.",
        discussion: """
        Ranks are threads of this process (the local transport), or, under mpirun, the MPI \
        processes (mpirun -np 4 paradit bench comm; --world is then ignored). Each message size is timed as the \
        median of --runs repetitions after --warmup; bandwidth is the bytes one rank receives per \
        second ("bus" figures would divide differently: see the JSON for raw times and sizes). \
        --emulate-nodes N splits the ranks over N emulated hosts whose links run at \
        --inter-node-gbps with --inter-node-latency-us, on either transport (under mpirun on top \
        of the real network).

        Example: paradit bench comm --world 4 --emulate-nodes 2 --inter-node-gbps 10 --trace comm.json
        """)

    @Option(help: "Number of ranks.")
    var world: Int = 2

    @Option(parsing: .upToNextOption, help: "Message sizes in floats per rank.")
    var sizes: [Int] = [1, 1024, 65536, 1 << 20, 1 << 22]

    @Option(help: "Timed repetitions per size.")
    var runs: Int = 5

    @Option(help: "Untimed repetitions per size.")
    var warmup: Int = 1

    @Option(help: "Emulated hosts (the link model applies between them).")
    var emulateNodes: Int = 1

    @Option(help: "Emulated bandwidth between hosts, Gbit/s.")
    var interNodeGbps: Double = 10

    @Option(help: "Emulated latency between hosts, µs.")
    var interNodeLatencyUs: Double = 50

    @Option(help: "Write a Chrome/Perfetto trace of every operation to this file.")
    var trace: String?

    @Flag(help: "Print the bytes each rank sent and received per operation.")
    var commReport = false

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    struct Case: Codable {
        var operation: String
        var floatsPerRank: Int
        var bytesReceivedPerRank: Int
        var timing: Timing
        var gbPerSecond: Double
    }

    struct Report: Codable {
        var suite = "comm"
        var transport = "local"
        var machine: MachineInfo
        var world: Int
        /// Emulated nodes (local transport) or the nodes MPI found.
        var emulatedNodes: Int
        var interNodeGbps: Double?
        var cases: [Case]
    }

    func validate() throws {
        guard world >= 2 else { throw ValidationError("--world must be at least 2 to communicate, got \(world)") }
        guard runs >= 1, warmup >= 0 else { throw ValidationError("--runs must be at least 1 and --warmup at least 0") }
        guard sizes.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--sizes must be positive") }
        guard emulateNodes >= 1, MPICommunicator.isLaunchedByMPI || world % emulateNodes == 0 else {
            throw ValidationError("--emulate-nodes \(emulateNodes) must divide --world \(world)")
        }
    }

    func run() throws {
        if MPICommunicator.isLaunchedByMPI { return try runMPI() }
        let log = Logger(label: "paradit.bench")
        let tracer = trace.map { _ in Tracer() }
        let links = emulateNodes > 1
            ? LinkModel(nodeOfRank: try Mesh.nodes(worldSize: world, nodes: emulateNodes), interGbps: interNodeGbps,
                        interLatency: interNodeLatencyUs * 1e-6)
            : nil
        let (sizes, runs, warmup, world) = (self.sizes, self.runs, self.warmup, self.world)
        let perRank = try LocalWorld.run(size: world, tracer: tracer, links: links) { comm -> ([Case], CommStats) in
            var cases: [Case] = []
            for n in sizes {
                if comm.rank == 0 { log.info("message size \(n) floats") }
                cases += try Self.measure(comm, floats: n, runs: runs, warmup: warmup)
            }
            return (cases, comm.stats)
        }
        let report = Report(machine: .current(threads: 1), world: world, emulatedNodes: emulateNodes,
                            interNodeGbps: links == nil ? nil : interNodeGbps, cases: perRank[0].0)
        var table = ResultTable(title: "Local transport, \(world) ranks" + (links == nil ? "" : ", \(emulateNodes) emulated nodes at \(interNodeGbps) Gbit/s"),
                                columns: ["operation", "floats/rank", "µs", "GB/s received"])
        for c in report.cases {
            table.add([c.operation, "\(c.floatsPerRank)", fmt(c.timing.median * 1e6), fmt(c.gbPerSecond, digits: 2)])
        }
        print(table.render())
        if commReport { printReport(perRank.map(\.1)) }
        if let trace, let tracer { try tracer.write(to: trace); print("wrote \(trace)") }
        if let json { try writeJSON(report, to: json) }
    }

    func runMPI() throws {
        let comm = try MPICommunicator.world()
        let tracer = trace.map { _ in Tracer() }
        comm.tracer = tracer
        guard emulateNodes >= 1, comm.size % emulateNodes == 0 else {
            throw ValidationError("--emulate-nodes \(emulateNodes) must divide the \(comm.size) MPI ranks")
        }
        if emulateNodes > 1 {
            comm.links = LinkModel(nodeOfRank: try Mesh.nodes(worldSize: comm.size, nodes: emulateNodes), interGbps: interNodeGbps,
                                   interLatency: interNodeLatencyUs * 1e-6)
        }
        var cases: [Case] = []
        for n in sizes { cases += try Self.measure(comm, floats: n, runs: runs, warmup: warmup) }
        let nodes = Set(try comm.nodeOfRank()).count  // collective: every rank takes part
        guard comm.rank == 0 else { return }
        let report = Report(transport: "mpi", machine: .current(threads: 1), world: comm.size, emulatedNodes: max(nodes, emulateNodes),
                            interNodeGbps: comm.links == nil ? nil : interNodeGbps, cases: cases)
        var table = ResultTable(title: "MPI transport, \(comm.size) ranks on \(nodes) node(s)"
                                    + (comm.links == nil ? "" : ", \(emulateNodes) emulated nodes at \(interNodeGbps) Gbit/s"),
                                columns: ["operation", "floats/rank", "µs", "GB/s received"])
        for c in cases { table.add([c.operation, "\(c.floatsPerRank)", fmt(c.timing.median * 1e6), fmt(c.gbPerSecond, digits: 2)]) }
        print(table.render())
        if commReport { printReport([comm.stats]) }
        if let trace, let tracer { try tracer.write(to: trace); print("wrote \(trace) (rank 0)") }
        if let json { try writeJSON(report, to: json) }
    }

    /// Times all-gather, all-to-all and a ring exchange of `floats` per rank on `comm`.
    static func measure(_ comm: Communicator, floats n: Int, runs: Int, warmup: Int) throws -> [Case] {
        let p = comm.size
        let send = Tensor(shape: [p * n], repeating: Float(comm.rank)), out = Tensor(zeros: [p * n])
        let next = (comm.rank + 1) % p, prev = (comm.rank + p - 1) % p
        let ops: [(String, Int, () throws -> Void)] = [
            ("allGather", (p - 1) * n, { try comm.allGather(send.data, count: n, into: out.data, counts: nil) }),
            ("allToAll", (p - 1) * n, {
                try comm.allToAll(send.data, sendCounts: Array(repeating: n, count: p), into: out.data,
                                  recvCounts: Array(repeating: n, count: p))
            }),
            ("ring send/recv", n, {
                let pending = comm.irecv(out.data, count: n, from: prev, tag: 0)
                let sent = try comm.isend(send.data, count: n, to: next, tag: 0)
                try pending.wait()
                try sent.wait()
            }),
        ]
        return try ops.map { name, receivedFloats, body in
            for _ in 0..<warmup { try body() }
            var samples: [Double] = []
            for _ in 0..<runs {
                try comm.barrier()
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                try comm.barrier()
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            let t = timing(samples)
            return Case(operation: name, floatsPerRank: n, bytesReceivedPerRank: 4 * receivedFloats, timing: t,
                        gbPerSecond: Double(4 * receivedFloats) / t.median / 1e9)
        }
    }

    func printReport(_ stats: [CommStats]) {
        var t = ResultTable(title: "\nBytes per rank and operation", columns: ["rank", "operation", "calls", "sent", "received"])
        for (rank, s) in stats.enumerated() {
            for (op, c) in s.byOperation.sorted(by: { $0.key < $1.key }) {
                t.add(["\(rank)", op, "\(c.calls)", "\(c.bytesSent)", "\(c.bytesReceived)"])
            }
        }
        print(t.render())
    }
}
