import Foundation
import ParaDiTTensor

/// One rank of a `LocalWorld`.
public final class LocalCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let world: LocalWorld
    public let stats = CommStats()
    public var size: Int { world.size }

    init(rank: Int, world: LocalWorld) {
        self.rank = rank
        self.world = world
    }

    /// The only rank of a world of one: serial runs take the parallel code path with it.
    public static func single(tracer: Tracer? = nil) -> LocalCommunicator {
        LocalCommunicator(rank: 0, world: LocalWorld(size: 1, tracer: tracer))
    }

    /// This rank's number in the whole world (its trace track and node).
    public var worldRank: Int { world.worldRanks[rank] }

    public func subgroup(_ members: [Int]) throws -> Communicator {
        guard let mine = members.firstIndex(of: rank), Set(members).count == members.count,
              members.allSatisfy({ $0 >= 0 && $0 < size }) else {
            throw CommError.badArgument(operation: "subgroup", reason: "members \(members) must be distinct ranks of \(size) and include this rank (\(rank))")
        }
        return LocalCommunicator(rank: mine, world: world.subgroup(worldRanks: members.map { world.worldRanks[$0] }))
    }

    /// Runs one operation: traced on this rank's track, then delayed as the link model says for
    /// the floats received from each peer (by group rank).
    func operation<R>(_ name: String, bytes: Int, receivedFrom floats: [Int], _ body: () throws -> R) throws -> R {
        func run() throws -> R {
            let r = try body()
            if let links = world.links {
                let delay = links.delay(me: worldRank, peers: world.worldRanks, bytes: floats.map { $0 * 4 })
                stats.recordInterNode(bytes: links.interNodeBytes(me: worldRank, peers: world.worldRanks, bytes: floats.map { $0 * 4 }))
                if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            }
            return r
        }
        guard let tracer = world.tracer else { return try run() }
        return try tracer.span(name, category: "comm", rank: worldRank, bytes: bytes, run)
    }

    /// Publishes, checks that every rank called the same operation with compatible sizes, runs
    /// `copy` with everyone's publications, then waits until all have copied.
    func collective(_ p: Publication, agree: ([Publication]) -> String?, _ copy: ([Publication]) -> Void) throws {
        let all = try world.rendezvous(rank: rank, p, operation: p.operation)
        if let other = all.first(where: { $0.operation != p.operation }) {
            throw CommError.mismatch(operation: p.operation, reason: "another rank called \(other.operation)")
        }
        if let reason = agree(all) { throw CommError.mismatch(operation: p.operation, reason: reason) }
        copy(all)
        _ = try world.rendezvous(rank: rank, nil, operation: p.operation + " (completion)")
    }

    func checkCounts(_ op: String, _ counts: [Int]) throws {
        guard counts.count == size, counts.allSatisfy({ $0 >= 0 }) else {
            throw CommError.badArgument(operation: op, reason: "needs \(size) non-negative counts, got \(counts)")
        }
    }

    public func allGather(_ send: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, counts: [Int]?) throws {
        let counts = counts ?? Array(repeating: count, count: size)
        try checkCounts("allGather", counts)
        guard counts[rank] == count else { throw CommError.badArgument(operation: "allGather", reason: "counts[\(rank)] = \(counts[rank]) but this rank sends \(count)") }
        let total = counts.reduce(0, +)
        try operation("allGather", bytes: 4 * total, receivedFrom: counts) {
            try collective(Publication(operation: "allGather", send: send, counts: counts),
                           agree: { all in all.allSatisfy { $0.counts == counts } ? nil : "counts differ between ranks" }) { all in
                var at = 0
                for (r, p) in all.enumerated() {
                    (out + at).update(from: p.send!, count: counts[r])
                    at += counts[r]
                }
            }
        }
        stats.record("allGather", sentFloats: count * (size - 1), receivedFloats: total - count)
    }

    public func allToAll(_ send: UnsafePointer<Float>, sendCounts: [Int], into out: UnsafeMutablePointer<Float>, recvCounts: [Int]) throws {
        try checkCounts("allToAll", sendCounts)
        try checkCounts("allToAll", recvCounts)
        let me = rank
        // Publication counts: this rank's send counts; rank r's block for me is at the sum of its earlier counts.
        try operation("allToAll", bytes: 4 * (sendCounts.reduce(0, +) + recvCounts.reduce(0, +)), receivedFrom: recvCounts) {
            try collective(Publication(operation: "allToAll", send: send, counts: sendCounts), agree: { all in
                for (r, p) in all.enumerated() where p.counts[me] != recvCounts[r] {
                    return "rank \(r) sends \(p.counts[me]) floats to rank \(me), which expects \(recvCounts[r])"
                }
                return nil
            }) { all in
                var at = 0
                for (r, p) in all.enumerated() {
                    let offset = p.counts[..<me].reduce(0, +)
                    (out + at).update(from: p.send! + offset, count: recvCounts[r])
                    at += recvCounts[r]
                }
            }
        }
        stats.record("allToAll", sentFloats: sendCounts.reduce(0, +) - sendCounts[rank],
                     receivedFloats: recvCounts.reduce(0, +) - recvCounts[rank])
    }

    public func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        let counts = Array(repeating: count, count: size)
        let sum = Tensor(zeros: [count])
        try operation("allReduce", bytes: 8 * count, receivedFrom: counts) {
            try collective(Publication(operation: "allReduce", send: UnsafePointer(buffer), counts: counts),
                           agree: { all in all.allSatisfy { $0.counts == counts } ? nil : "counts differ between ranks" }) { all in
                // Rank order, so every rank computes bit-identical sums.
                for p in all { add(count: count, sum.data, p.send!, out: sum.data, pool: ThreadPool.current) }
            }
        }
        buffer.update(from: sum.data, count: count)
        stats.record("allReduce", sentFloats: count * (size - 1), receivedFloats: count * (size - 1))
    }

    public func reduceScatter(_ send: UnsafePointer<Float>, counts: [Int], into out: UnsafeMutablePointer<Float>) throws {
        try checkCounts("reduceScatter", counts)
        let offset = counts[..<rank].reduce(0, +), mine = counts[rank]
        out.initialize(repeating: 0, count: mine)
        try operation("reduceScatter", bytes: 4 * (counts.reduce(0, +) + mine), receivedFrom: Array(repeating: mine, count: size)) {
            try collective(Publication(operation: "reduceScatter", send: send, counts: counts),
                           agree: { all in all.allSatisfy { $0.counts == counts } ? nil : "counts differ between ranks" }) { all in
                for p in all { add(count: mine, out, p.send! + offset, out: out, pool: ThreadPool.current) }
            }
        }
        stats.record("reduceScatter", sentFloats: counts.reduce(0, +) - mine, receivedFloats: mine * (size - 1))
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        guard root >= 0 && root < size else { throw CommError.badArgument(operation: "broadcast", reason: "root \(root) is not a rank of \(size)") }
        var p = Publication(operation: "broadcast", send: UnsafePointer(buffer), counts: [count])
        p.root = root
        try operation("broadcast", bytes: 4 * count, receivedFrom: (0..<size).map { $0 == root ? count : 0 }) {
            try collective(p, agree: { all in
                all.allSatisfy { $0.root == root && $0.counts == [count] } ? nil : "root or count differs between ranks"
            }) { all in
                if rank != root { buffer.update(from: all[root].send!, count: count) }
            }
        }
        stats.record("broadcast", sentFloats: rank == root ? count * (size - 1) : 0, receivedFloats: rank == root ? 0 : count)
    }

    public func barrier() throws {
        try operation("barrier", bytes: 0, receivedFrom: Array(repeating: 0, count: size)) {
            try collective(Publication(operation: "barrier", counts: []), agree: { _ in nil }) { _ in }
        }
        stats.record("barrier", sentFloats: 0, receivedFloats: 0)
    }

    // MARK: Point to point

    func checkPeer(_ op: String, _ peer: Int) throws {
        guard peer >= 0 && peer < size && peer != rank else {
            throw CommError.badArgument(operation: op, reason: "peer \(peer) is not another rank of \(size)")
        }
    }

    public func send(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int, tag: Int) throws {
        try checkPeer("send", peer)
        let message = Array(UnsafeBufferPointer(start: buffer, count: count))
        try operation("send", bytes: 4 * count, receivedFrom: Array(repeating: 0, count: size)) {
            world.condition.lock()
            world.mailboxes[LocalWorld.MailboxKey(from: rank, to: peer, tag: tag), default: []].append((message, monotonicSeconds()))
            world.condition.broadcast()
            world.condition.unlock()
        }
        stats.record("send", sentFloats: count, receivedFloats: 0)
    }

    public func recv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int, tag: Int) throws {
        try receive(buffer, count: count, from: peer, tag: tag, posted: nil)
    }

    /// Receives a message; with the link model, it arrives `delay` after it was both sent and
    /// `posted` (nil: now), so a receive posted early and waited for late costs no extra time.
    func receive(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int, tag: Int, posted: Double?) throws {
        try checkPeer("recv", peer)
        let key = LocalWorld.MailboxKey(from: peer, to: rank, tag: tag)
        let traced = { (body: () throws -> (data: [Float], sent: Double)) throws -> (data: [Float], sent: Double) in
            guard let tracer = self.world.tracer else { return try body() }
            return try tracer.span("recv", category: "comm", rank: self.worldRank, bytes: 4 * count, body)
        }
        let message = try traced {
            world.condition.lock()
            defer { world.condition.unlock() }
            try world.waitLocked(rank: rank, operation: "recv from rank \(peer) (tag \(tag))", waitingFor: { [peer] }) {
                !(world.mailboxes[key]?.isEmpty ?? true)
            }
            return world.mailboxes[key]!.removeFirst()
        }
        guard message.data.count == count else {
            throw CommError.mismatch(operation: "recv from rank \(peer)", reason: "message has \(message.data.count) floats, receiver expects \(count)")
        }
        message.data.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: count) }
        if let links = world.links {
            let start = max(message.sent, posted ?? monotonicSeconds())
            let bytes = (0..<size).map { $0 == peer ? 4 * count : 0 }
            stats.recordInterNode(bytes: links.interNodeBytes(me: worldRank, peers: world.worldRanks, bytes: bytes))
            let delay = links.delay(me: worldRank, peers: world.worldRanks, bytes: bytes)
            sleepUntil(start + delay)
        }
        stats.record("recv", sentFloats: 0, receivedFloats: count)
    }

    /// Buffered: the data is copied out at once, so the request is already complete.
    public func isend(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int, tag: Int) throws -> CommRequest {
        try send(buffer, count: count, to: peer, tag: tag)
        return CompletedRequest()
    }

    public func irecv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int, tag: Int) -> CommRequest {
        let posted = monotonicSeconds()
        return DeferredRequest { try self.receive(buffer, count: count, from: peer, tag: tag, posted: posted) }
    }
}

extension LocalCommunicator {
    /// Deferred: the collective runs at `wait()`, which every rank reaches in the same order.
    public func iallGather(_ send: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, counts: [Int]?) throws -> CommRequest {
        DeferredRequest { try self.allGather(send, count: count, into: out, counts: counts) }
    }

    public func iallToAll(_ send: UnsafePointer<Float>, sendCounts: [Int], into out: UnsafeMutablePointer<Float>, recvCounts: [Int]) throws -> CommRequest {
        DeferredRequest { try self.allToAll(send, sendCounts: sendCounts, into: out, recvCounts: recvCounts) }
    }

    public func window(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> CommWindow {
        var counts = Array(repeating: 0, count: size)
        counts[rank] = count
        var bases: [UnsafeMutablePointer<Float>] = []
        var sizes: [Int] = []
        try operation("window", bytes: 0, receivedFrom: Array(repeating: 0, count: size)) {
            try collective(Publication(operation: "window", send: UnsafePointer(buffer), counts: [count]), agree: { _ in nil }) { all in
                bases = all.map { UnsafeMutablePointer(mutating: $0.send!) }
                sizes = all.map { $0.counts[0] }
            }
        }
        return LocalWindow(comm: self, bases: bases, sizes: sizes)
    }
}

/// A window of the local transport: every rank's registered buffer, written and read directly.
final class LocalWindow: CommWindow {
    let comm: LocalCommunicator
    let bases: [UnsafeMutablePointer<Float>]
    let sizes: [Int]

    init(comm: LocalCommunicator, bases: [UnsafeMutablePointer<Float>], sizes: [Int]) {
        (self.comm, self.bases, self.sizes) = (comm, bases, sizes)
    }

    func bounds(_ op: String, _ target: Int, _ offset: Int, _ count: Int) throws {
        guard target >= 0 && target < bases.count && offset >= 0 && count >= 0 && offset + count <= sizes[target] else {
            throw CommError.badArgument(operation: op, reason: "[\(offset), \(offset + count)) of rank \(target)'s window (\(target < sizes.count ? sizes[target] : 0) floats)")
        }
    }

    func put(_ source: UnsafePointer<Float>, count: Int, to target: Int, offset: Int) throws {
        try bounds("put", target, offset, count)
        (bases[target] + offset).update(from: source, count: count)
        comm.stats.record("put", sentFloats: target == comm.rank ? 0 : count, receivedFloats: 0)
    }

    func get(_ destination: UnsafeMutablePointer<Float>, count: Int, from target: Int, offset: Int) throws {
        try bounds("get", target, offset, count)
        destination.update(from: bases[target] + offset, count: count)
        comm.stats.record("get", sentFloats: 0, receivedFloats: target == comm.rank ? 0 : count)
    }

    func fence() throws { try comm.barrier() }
    func free() throws { try comm.barrier() }
}

final class CompletedRequest: CommRequest {
    func wait() throws {}
}

/// Completes its operation on the first `wait()`.
final class DeferredRequest: CommRequest {
    private var operation: (() throws -> Void)?
    init(_ operation: @escaping () throws -> Void) { self.operation = operation }
    func wait() throws {
        guard let op = operation else { return }
        operation = nil
        try op()
    }
}

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Sleeps until `deadline` (monotonic seconds), if it is still ahead.
func sleepUntil(_ deadline: Double) {
    let remaining = deadline - monotonicSeconds()
    if remaining > 0 { Thread.sleep(forTimeInterval: remaining) }
}
