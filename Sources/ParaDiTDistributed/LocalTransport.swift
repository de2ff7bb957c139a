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

/// The shared state of a world of `size` local ranks.
public final class LocalWorld: @unchecked Sendable {
    public let size: Int
    /// How long a rank waits for the others before it reports a hang.
    public let timeout: Double

    let condition = NSCondition()
    var arrived: Set<Int> = []
    var generation = 0
    var published: [Publication?]
    var failure: (rank: Int, reason: String)?
    var mailboxes: [MailboxKey: [[Float]]] = [:]

    struct MailboxKey: Hashable { var from, to, tag: Int }

    public init(size: Int, timeout: Double = 120) {
        check(size >= 1, "a world needs at least one rank")
        self.size = size
        self.timeout = timeout
        published = Array(repeating: nil, count: size)
    }

    /// Marks `rank` as failed: every rank waiting now or later gets an error naming it.
    public func fail(rank: Int, reason: String) {
        condition.lock()
        if failure == nil { failure = (rank, reason) }
        condition.broadcast()
        condition.unlock()
    }

    /// Waits (holding the lock) until `ready()` or failure or timeout.
    func waitLocked(rank: Int, operation: String, waitingFor: () -> [Int], _ ready: () -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !ready() {
            if let f = failure, f.rank != rank { throw CommError.peerFailed(rank: f.rank, reason: f.reason, during: operation) }
            if !condition.wait(until: deadline) && !ready() {
                throw CommError.timedOut(rank: rank, operation: operation, seconds: timeout, waitingFor: waitingFor())
            }
        }
        if let f = failure, f.rank != rank { throw CommError.peerFailed(rank: f.rank, reason: f.reason, during: operation) }
    }

    /// Rendezvous of all ranks; returns everyone's publication (phase 1) or nothing (phase 2).
    func rendezvous(rank: Int, _ publication: Publication?, operation: String) throws -> [Publication] {
        condition.lock()
        defer { condition.unlock() }
        if let f = failure, f.rank != rank { throw CommError.peerFailed(rank: f.rank, reason: f.reason, during: operation) }
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
    public static func run<R>(size: Int, threadsPerRank: Int = 1, timeout: Double = 120,
                              _ body: @escaping @Sendable (LocalCommunicator) throws -> R) throws -> [R] {
        let world = LocalWorld(size: size, timeout: timeout)
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
