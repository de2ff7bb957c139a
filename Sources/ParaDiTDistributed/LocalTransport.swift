import Foundation
import ParaDiTTensor

// The local transport: ranks are threads of one process. A collective is a rendezvous: every rank
// publishes its buffers (pointers and counts) and waits for all; then each rank copies what it
// needs straight out of the others' buffers (one copy, no staging); a second rendezvous keeps
// every buffer alive until all have finished reading. Point-to-point messages are copied into
// per-pair mailboxes.

/// What one rank publishes for a collective.
struct Publication {
    var operation: String
    var send: UnsafePointer<Float>?
    var counts: [Int]
    var root = 0
}

/// An emulated network for the local transport: each link class (inside a node, between nodes)
/// has a latency and a bandwidth, and a rank's communication takes as long as its traffic needs
/// over the slower class it uses, so a multi-node cluster can be emulated on one machine.
public struct LinkModel: Sendable {
    public var nodeOfRank: [Int]
    public var intraLatency: Double, intraBytesPerSecond: Double
    public var interLatency: Double, interBytesPerSecond: Double

    /// `interGbps` gigabits per second and `interLatency` seconds between nodes; shared memory inside.
    public init(nodeOfRank: [Int], interGbps: Double, interLatency: Double = 50e-6,
                intraLatency: Double = 0, intraBytesPerSecond: Double = .infinity) {
        self.nodeOfRank = nodeOfRank
        self.intraLatency = intraLatency
        self.intraBytesPerSecond = intraBytesPerSecond
        self.interLatency = interLatency
        self.interBytesPerSecond = interGbps * 1e9 / 8
    }

    /// Of `bytes[i]` received from global rank `peers[i]`, those that cross hosts.
    public func interNodeBytes(me: Int, peers: [Int], bytes: [Int]) -> Int {
        zip(peers, bytes).reduce(0) { $0 + ($1.0 != me && nodeOfRank[$1.0] != nodeOfRank[me] ? $1.1 : 0) }
    }

    /// Seconds rank `me` spends receiving `bytes[i]` from global rank `peers[i]`.
    public func delay(me: Int, peers: [Int], bytes: [Int]) -> Double {
        var intra = 0, inter = 0, anyIntra = false, anyInter = false
        for (p, b) in zip(peers, bytes) where p != me {
            if nodeOfRank[p] == nodeOfRank[me] { intra += b; anyIntra = true } else { inter += b; anyInter = true }
        }
        let tIntra = anyIntra ? intraLatency + Double(intra) / intraBytesPerSecond : 0
        let tInter = anyInter ? interLatency + Double(inter) / interBytesPerSecond : 0
        return max(tIntra, tInter)
    }
}

/// The shared state of a group of `size` local ranks: the whole world, or a subgroup of it.
public final class LocalWorld: @unchecked Sendable {
    public let size: Int
    /// How long a rank waits for the others before it reports a hang.
    public let timeout: Double
    /// Global (world) rank of each rank of this group.
    public let worldRanks: [Int]
    public let tracer: Tracer?
    public let links: LinkModel?
    /// The world this group belongs to (nil: this is the world).
    weak var root: LocalWorld?
    private var children: [[Int]: LocalWorld] = [:]

    let condition = NSCondition()
    var arrived: Set<Int> = []
    var generation = 0
    var published: [Publication?]
    var failure: (rank: Int, reason: String)?
    /// Messages in flight per (sender, receiver, tag), with the time each was sent.
    var mailboxes: [MailboxKey: [(data: [Float], sent: Double)]] = [:]

    struct MailboxKey: Hashable { var from, to, tag: Int }
    /// An object being handed to every rank by a collective creation, and how many have taken it.
    private var staged: (object: AnyObject, taken: Int)?

    public init(size: Int, timeout: Double = 300, tracer: Tracer? = nil, links: LinkModel? = nil) {
        check(size >= 1, "a world needs at least one rank")
        self.size = size
        self.timeout = timeout
        self.tracer = tracer
        self.links = links
        worldRanks = Array(0..<size)
        published = Array(repeating: nil, count: size)
    }

    init(subgroupOf parent: LocalWorld, worldRanks: [Int]) {
        size = worldRanks.count
        timeout = parent.timeout
        tracer = parent.tracer
        links = parent.links
        self.worldRanks = worldRanks
        published = Array(repeating: nil, count: worldRanks.count)
    }

    var world: LocalWorld { root ?? self }

    /// The subgroup of these world ranks, created by whichever member asks first.
    func subgroup(worldRanks members: [Int]) -> LocalWorld {
        let w = world
        w.condition.lock()
        defer { w.condition.unlock() }
        if let g = w.children[members] { return g }
        let g = LocalWorld(subgroupOf: w, worldRanks: members)
        g.root = w
        if let f = w.failure { g.failure = f }
        w.children[members] = g
        return g
    }

    /// The one object all ranks of a collective creation share: the first rank to ask makes it,
    /// the last to take it clears the slot. Called once by every rank between a collective's two
    /// rendezvous, so two creations never overlap.
    func shared<T: AnyObject>(_ make: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        let object = (staged?.object as? T) ?? make()
        let taken = (staged?.taken ?? 0) + 1
        staged = taken == size ? nil : (object, taken)
        return object
    }

    /// Marks world rank `rank` as failed: every rank of every group, waiting now or later, gets an
    /// error naming it.
    public func fail(rank: Int, reason: String) {
        let w = world
        w.condition.lock()
        let groups = [w] + Array(w.children.values)
        w.condition.unlock()
        for g in groups {
            g.condition.lock()
            if g.failure == nil { g.failure = (rank, reason) }
            g.condition.broadcast()
            g.condition.unlock()
        }
    }

    /// Waits (holding the lock) until `ready()` or failure or timeout.
    func waitLocked(rank: Int, operation: String, waitingFor: () -> [Int], _ ready: () -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !ready() {
            if let f = failure, f.rank != worldRanks[rank] { throw CommError.peerFailed(rank: f.rank, reason: f.reason, during: operation) }
            if !condition.wait(until: deadline) && !ready() {
                throw CommError.timedOut(rank: worldRanks[rank], operation: operation, seconds: timeout,
                                         waitingFor: waitingFor().map { worldRanks[$0] })
            }
        }
        if let f = failure, f.rank != worldRanks[rank] { throw CommError.peerFailed(rank: f.rank, reason: f.reason, during: operation) }
    }

    /// Rendezvous of all ranks; returns everyone's publication (phase 1) or nothing (phase 2).
    func rendezvous(rank: Int, _ publication: Publication?, operation: String) throws -> [Publication] {
        condition.lock()
        defer { condition.unlock() }
        if let f = failure, f.rank != worldRanks[rank] { throw CommError.peerFailed(rank: f.rank, reason: f.reason, during: operation) }
        // Phase 2 (publication nil) leaves the slots alone: a slower rank may still be reading them.
        if let publication { published[rank] = publication }
        let myGeneration = generation
        arrived.insert(rank)
        if arrived.count == size {
            arrived = []
            generation += 1
            condition.broadcast()
        } else {
            try waitLocked(rank: rank, operation: operation,
                           waitingFor: { (0..<size).filter { !arrived.contains($0) } }) { generation != myGeneration }
        }
        return publication == nil ? [] : published.map { $0! }
    }

    // MARK: Running ranks

    /// Runs `body` on `size` threads, one per rank, each with its own thread pool of
    /// `threadsPerRank` threads; returns the results in rank order. A rank that throws fails the
    /// world, so the others stop at their next communication; the first error is rethrown.
    public static func run<R>(size: Int, threadsPerRank: Int = 1, timeout: Double = 300, tracer: Tracer? = nil,
                              links: LinkModel? = nil,
                              _ body: @escaping @Sendable (LocalCommunicator) throws -> R) throws -> [R] {
        let world = LocalWorld(size: size, timeout: timeout, tracer: tracer, links: links)
        let results = ResultBox<R>(size: size)
        let group = DispatchGroup()
        for rank in 0..<size {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let comm = LocalCommunicator(rank: rank, world: world)
                do {
                    let value = try ThreadPool(threads: threadsPerRank).withCurrent { try body(comm) }
                    results.set(rank, .success(value))
                } catch {
                    world.fail(rank: rank, reason: "\(error)")
                    results.set(rank, .failure(error))
                }
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        group.wait()
        return try results.values()
    }
}

final class ResultBox<R>: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<R, Error>?]
    init(size: Int) { results = Array(repeating: nil, count: size) }
    func set(_ rank: Int, _ r: Result<R, Error>) { lock.lock(); results[rank] = r; lock.unlock() }
    /// The values, or the error of the rank that failed first (its own error, not a peer's report).
    func values() throws -> [R] {
        let all = results.map { $0! }
        if let original = all.lazy.compactMap({ r -> Error? in
            if case let .failure(e) = r, !(e is CommError) { return e }
            return nil
        }).first { throw original }
        return try all.map { try $0.get() }
    }
}
