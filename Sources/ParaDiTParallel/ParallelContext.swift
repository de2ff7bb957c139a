import Foundation
import ParaDiTDistributed

/// One rank's place in a parallel run: its communicator along each axis of the mesh (nil where
/// the degree is 1) and its coordinates. Every rank builds it in the same order, so the sub-group
/// creation (collective under MPI) matches.
public final class ParallelContext {
    public let config: ParallelConfig
    /// How attention is split, decided once from the configuration.
    public let plan: AttentionPlan
    public let world: Communicator
    public let mesh: Mesh
    /// The cond/uncond split: ranks with the same sequence position and different samples.
    public let cfgGroup: Communicator?
    /// Ranks that share one sample's tokens (ulysses × ring), numbered ulysses fastest.
    public let sequenceGroup: Communicator?
    public let ulyssesGroup: Communicator?
    /// The inter-node axis: ranks with the same ulysses position, one per column (ring or torus).
    public let ringGroup: Communicator?
    /// DistriFusion's K/V exchange: the sequence group's members on a communicator of its own, so
    /// its asynchronous gathers never queue behind the output gathers (and are counted apart).
    public let patchGroup: Communicator?
    /// PipeFusion's stages: ranks with the same cfg and sequence position, in stage order.
    public let pipelineGroup: Communicator?
    public let cfgIndex: Int, ulyssesIndex: Int, ringIndex: Int, stageIndex: Int
    /// Spans of compute (attention, blocks) go here beside the transport's communication spans.
    public let tracer: Tracer?
    public let traceRank: Int
    /// Seconds this rank has spent blocked in the waits of the attention exchanges (the spans the
    /// trace names "wait …"), traced or not.
    public private(set) var waitSeconds = 0.0
    /// One-sided windows with their protocol state, kept across calls (allocation is collective
    /// and, under MPI, slow), by a key every rank of the group computes alike.
    var channels: [(key: [Int], channel: OneSidedChannel)] = []

    public init(config: ParallelConfig, world: Communicator, nodeOfRank: [Int]? = nil, tracer: Tracer? = nil, traceRank: Int? = nil) throws {
        guard config.worldSize == world.size else {
            throw ParallelError.unsupported("\(config) needs \(config.worldSize) rank(s), but the world has \(world.size); "
                                            + "launch \(config.worldSize) ranks (--world or mpirun -np) or change the degrees")
        }
        self.config = config
        plan = AttentionPlan(config)
        self.world = world
        mesh = try config.mesh(worldSize: world.size, nodeOfRank: nodeOfRank)
        let r = world.rank
        cfgIndex = mesh.coordinate(of: r, along: .cfg)
        ulyssesIndex = mesh.coordinate(of: r, along: .ulysses)
        ringIndex = mesh.coordinate(of: r, along: .ring)
        stageIndex = mesh.coordinate(of: r, along: .pipefusion)
        func group(_ members: [Int]) throws -> Communicator? { members.count > 1 ? try world.subgroup(members) : nil }
        cfgGroup = try group(mesh.group(.cfg, containing: r))
        let sequence = mesh.group([.ulysses, .ring], containing: r)
        sequenceGroup = try group(sequence)
        ulyssesGroup = try group(mesh.group(.ulysses, containing: r))
        ringGroup = config.columns > 1 ? try group(mesh.group(.ring, containing: r)) : nil
        patchGroup = config.distrifusion > 1 ? try group(sequence) : nil
        pipelineGroup = try group(mesh.group(.pipefusion, containing: r))
        self.tracer = tracer
        self.traceRank = traceRank ?? r
    }

    /// This rank's number in its sequence-parallel group (its token shard).
    public var sequenceIndex: Int { ringIndex * config.ulysses + ulyssesIndex }

    /// The sub-group communicators in use, named by axis (for byte accounting).
    public var groups: [(axis: String, comm: Communicator)] {
        [("cfg", cfgGroup), ("ulysses", ulyssesGroup), (config.torus > 1 ? "torus" : "ring", ringGroup), ("distrifusion", patchGroup), ("pipefusion", pipelineGroup),
         ("sequence", sequenceGroup)]
            .compactMap { name, c in c.map { (name, $0) } }
    }

    /// Bytes this rank has sent over all its groups.
    public var bytesSent: Int { groups.reduce(0) { $0 + $1.comm.stats.totalSent } }

    /// Waits for `request`, tracing the wait on this rank's track and the transfer, from `posted`
    /// (a `tracer.now()`), on its in-flight track.
    func wait(_ request: CommRequest, _ name: String, posted: Double?, bytes: Int) throws {
        try wait(name, posted: posted, bytes: bytes) { try request.wait() }
    }

    /// Runs the blocking `body` as a wait: timed into `waitSeconds`, traced as "wait `name`" on this
    /// rank's track, and (with `posted`) the transfer from `posted` to now on its in-flight track.
    func wait(_ name: String, posted: Double?, bytes: Int, _ body: () throws -> Void) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        guard let tracer else { return try body() }
        try tracer.span("wait \(name)", category: "comm", rank: traceRank, body)
        guard let posted else { return }
        tracer.record(.init(name: name, category: "transfer", rank: Tracer.transferTrack(traceRank), start: posted,
                            duration: tracer.now() - posted, bytes: bytes))
    }

    /// The channel of `key` on `comm`, created (collectively) at its first use with `count` floats
    /// on this rank and `slots` counters.
    func channel(_ key: [Int], comm: Communicator, count: Int, slots: Int) throws -> OneSidedChannel {
        if let c = channels.first(where: { $0.key == key }) { return c.channel }
        let c = OneSidedChannel(window: try comm.notifiedWindow(count: count, slots: slots))
        channels.append((key, c))
        return c
    }

    /// Frees the one-sided windows (collective: every rank of the run calls it at the same point,
    /// after its last forward pass; needed under MPI before the job ends).
    public func releaseWindows() throws {
        for c in channels { try c.channel.window.free() }
        channels = []
    }

    /// Times `body` as a compute span on this rank's trace track.
    func span<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        guard let tracer else { return try body() }
        return try tracer.span(name, category: "compute", rank: traceRank, body)
    }
}
