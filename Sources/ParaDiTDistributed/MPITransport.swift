import CParaDiTMPI
import Foundation

// The MPI transport: Open MPI processes launched by mpirun, one rank each. Every operation maps to
// the MPI call of the same meaning; errors return (MPI_ERRORS_RETURN) and become CommError.
// Calls are made from the rank's own thread, never from a Swift concurrency task. Every operation
// is started non-blocking and completed by polling MPI_Test with growing pauses: a blocking MPI
// call spins a core forever on a stopped peer, while a poll gives up after `timeout` seconds
// without progress, naming the operation and the ranks it waited for.

/// One rank of an MPI communicator.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    let comm: MPI_Comm
    public let rank: Int
    public let size: Int
    public let stats = CommStats()
    public var tracer: Tracer?
    /// An emulated network over the real one (set on the world before taking subgroups): each
    /// operation then also takes the time its traffic needs on the modelled links.
    public var links: LinkModel?
    /// Seconds an operation may wait without completing before it fails as a hang.
    public var timeout: Double = 300
    /// Rank in MPI_COMM_WORLD (trace track).
    public let worldRank: Int
    /// The MPI_COMM_WORLD rank of each rank of this communicator (for the link model).
    let worldRanks: [Int]

    /// Whether this process was started by mpirun (Open MPI or a PMI launcher).
    public static var isLaunchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMI_SIZE"] != nil
    }

    /// Initialises MPI (once) and returns the world communicator.
    public static func world() throws -> MPICommunicator {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            // Open MPI 4.1's osc/rdma component cannot create windows over shared memory without a
            // single-copy mechanism (the usual case in containers); unless the user chose one,
            // let the others (ucx, pt2pt, sm) serve one-sided operations.
            setenv("OMPI_MCA_osc", "^rdma", 0)
            var provided: Int32 = 0
            try checkMPI(MPI_Init_thread(nil, nil, paradit_mpi_thread_funneled(), &provided), "MPI_Init_thread")
            atexit {
                var finalized: Int32 = 0
                MPI_Finalized(&finalized)
                if finalized == 0 { MPI_Finalize() }
            }
        }
        MPI_Comm_set_errhandler(paradit_mpi_comm_world(), paradit_mpi_errors_return())
        return MPICommunicator(comm: paradit_mpi_comm_world(), worldRanks: nil)
    }

    init(comm: MPI_Comm, worldRanks: [Int]?) {
        self.comm = comm
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r)
        size = Int(s)
        self.worldRanks = worldRanks ?? Array(0..<Int(s))
        worldRank = self.worldRanks[Int(r)]
    }

    /// Ends every rank of the job at once: what a rank that fails must do so that no peer hangs.
    public func abort(_ reason: String) -> Never {
        FileHandle.standardError.write(Data("rank \(worldRank) failed: \(reason)\n".utf8))
        MPI_Abort(comm, 1)
        exit(1)
    }

    /// The node index of every rank (ranks sharing memory are on one node), numbered from 0.
    public func nodeOfRank() throws -> [Int] {
        var local: MPI_Comm? = nil
        try Self.checkMPI(MPI_Comm_split_type(comm, paradit_mpi_comm_type_shared(), Int32(rank), paradit_mpi_info_null(), &local), "MPI_Comm_split_type")
        var localRank: Int32 = 0
        MPI_Comm_rank(local, &localRank)
        // Each node's leader is its local rank 0; everyone learns its leader's global rank.
        var leader = Int32(localRank == 0 ? rank : 0)
        try Self.checkMPI(MPI_Bcast(&leader, 1, paradit_mpi_int(), 0, local), "MPI_Bcast")
        var leaders = [Int32](repeating: 0, count: size)
        try Self.checkMPI(MPI_Allgather(&leader, 1, paradit_mpi_int(), &leaders, 1, paradit_mpi_int(), comm), "MPI_Allgather")
        MPI_Comm_free(&local)
        let distinct = Array(Set(leaders)).sorted()
        return leaders.map { distinct.firstIndex(of: $0)! }
    }

    static func checkMPI(_ code: Int32, _ call: String) throws {
        guard code == paradit_mpi_success() else {
            var length: Int32 = 0
            var text = [CChar](repeating: 0, count: 512)
            MPI_Error_string(code, &text, &length)
            throw CommError.badArgument(operation: call, reason: String(cString: text))
        }
    }

    func ints(_ op: String, _ counts: [Int]) throws -> [Int32] {
        guard counts.count == size, counts.allSatisfy({ $0 >= 0 && $0 <= Int(Int32.max) }) else {
            throw CommError.badArgument(operation: op, reason: "needs \(size) counts in 0...\(Int32.max), got \(counts)")
        }
        return counts.map { Int32($0) }
    }

    static func displacements(_ counts: [Int32]) -> [Int32] {
        var d: [Int32] = [], at: Int32 = 0
        for c in counts { d.append(at); at += c }
        return d
    }

    /// Runs one operation, traced, then (with a link model) waits out the emulated time of the
    /// floats received from each rank of this communicator.
    func traced(_ name: String, bytes: Int, receivedFrom floats: [Int]? = nil, _ body: () throws -> Void) throws {
        try withoutActuallyEscaping(body) { body in
            let run = {
                let start = monotonicSeconds()
                try body()
                if let floats { sleepUntil(start + self.emulatedDelay(floats)) }
            }
            if let tracer { try tracer.span(name, category: "comm", rank: worldRank, bytes: bytes, run) } else { try run() }
        }
    }

    /// Seconds the link model gives receiving `floats[r]` from each rank r (0 without one).
    func emulatedDelay(_ floats: [Int]) -> Double {
        guard let links else { return 0 }
        stats.recordInterNode(bytes: links.interNodeBytes(me: worldRank, peers: worldRanks, bytes: floats.map { 4 * $0 }))
        return links.delay(me: worldRank, peers: worldRanks, bytes: floats.map { 4 * $0 })
    }

    func fromOne(_ peer: Int, _ count: Int) -> [Int] { (0..<size).map { $0 == peer ? count : 0 } }

    // MARK: Completion

    /// Starts an operation with `start` (which fills in its request) and polls it to completion.
    func complete(_ call: String, waitingFor peers: [Int]? = nil, _ start: (inout MPI_Request?) -> Int32) throws {
        var request: MPI_Request? = nil
        try Self.checkMPI(start(&request), call)
        try poll(&request, call, waitingFor: peers)
    }

    /// Polls `request` until it completes. For the first second it tests without pause, as
    /// MPI_Wait would: Open MPI moves a large message's fragments only inside MPI calls, and
    /// pausing there made a 4 MB all-gather 12× slower. A wait past that second is a peer that is
    /// late or stopped: it tests every 100 µs, leaving its core to the compute threads, and past
    /// `timeout` seconds fails naming the ranks it waited for (all the others when `peers` is nil).
    func poll(_ request: inout MPI_Request?, _ call: String, waitingFor peers: [Int]?) throws {
        let start = monotonicSeconds()
        var done: Int32 = 0, tests = 0
        while true {
            try Self.checkMPI(MPI_Test(&request, &done, paradit_mpi_status_ignore()), call)
            if done != 0 { return }
            tests += 1
            guard tests % 64 == 0 else { continue }  // the clock is read between bursts of tests
            let waited = monotonicSeconds() - start
            if waited > timeout {
                let others = (peers ?? Array(0..<size)).filter { $0 != rank && $0 >= 0 && $0 < size }
                throw CommError.timedOut(rank: worldRank, operation: call, seconds: timeout, waitingFor: others.map { worldRanks[$0] })
            }
            if waited > 1 { usleep(100) }
        }
    }

    // MARK: Collectives

    public func allGather(_ send: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, counts: [Int]?) throws {
        let c = try ints("allGather", counts ?? Array(repeating: count, count: size))
        guard Int(c[rank]) == count else { throw CommError.badArgument(operation: "allGather", reason: "counts[\(rank)] = \(c[rank]) but this rank sends \(count)") }
        let total = c.reduce(0) { $0 + Int($1) }
        try traced("allGather", bytes: 4 * total, receivedFrom: c.enumerated().map { $0 == rank ? 0 : Int($1) }) {
            // Counts, displacements and sources are read until completion: stable addresses, kept alive.
            let keep = RequestArrays([c, Self.displacements(c)])
            try withExtendedLifetime(keep) {
                try complete("MPI_Iallgatherv") { MPI_Iallgatherv(send, Int32(count), paradit_mpi_float(), out, keep.arrays[0].base,
                                                                   keep.arrays[1].base, paradit_mpi_float(), comm, &$0) }
            }
        }
        stats.record("allGather", sentFloats: count * (size - 1), receivedFloats: total - count)
    }

    public func allToAll(_ send: UnsafePointer<Float>, sendCounts: [Int], into out: UnsafeMutablePointer<Float>, recvCounts: [Int]) throws {
        let sc = try ints("allToAll", sendCounts), rc = try ints("allToAll", recvCounts)
        try traced("allToAll", bytes: 4 * (sendCounts.reduce(0, +) + recvCounts.reduce(0, +)),
                   receivedFrom: recvCounts.enumerated().map { $0 == rank ? 0 : $1 }) {
            let keep = RequestArrays([sc, Self.displacements(sc), rc, Self.displacements(rc)])
            try withExtendedLifetime(keep) {
                try complete("MPI_Ialltoallv") { MPI_Ialltoallv(send, keep.arrays[0].base, keep.arrays[1].base, paradit_mpi_float(), out,
                                                                 keep.arrays[2].base, keep.arrays[3].base, paradit_mpi_float(), comm, &$0) }
            }
        }
        stats.record("allToAll", sentFloats: sendCounts.reduce(0, +) - sendCounts[rank], receivedFloats: recvCounts.reduce(0, +) - recvCounts[rank])
    }

    public func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        let copy = Array(UnsafeBufferPointer(start: buffer, count: count))
        try traced("allReduce", bytes: 8 * count, receivedFrom: Array(repeating: count, count: size)) {
            try copy.withUnsafeBufferPointer { source in
                try complete("MPI_Iallreduce") {
                    MPI_Iallreduce(source.baseAddress, buffer, Int32(count), paradit_mpi_float(), paradit_mpi_sum(), comm, &$0)
                }
            }
        }
        // Ring all-reduce: 2·(p−1)/p of the buffer each way.
        let moved = 2 * (size - 1) * count / max(size, 1)
        stats.record("allReduce", sentFloats: moved, receivedFloats: moved)
    }

    public func reduceScatter(_ send: UnsafePointer<Float>, counts: [Int], into out: UnsafeMutablePointer<Float>) throws {
        let c = try ints("reduceScatter", counts)
        try traced("reduceScatter", bytes: 4 * (counts.reduce(0, +) + counts[rank]), receivedFrom: Array(repeating: counts[rank], count: size)) {
            let keep = RequestArrays([c])
            try withExtendedLifetime(keep) {
                try complete("MPI_Ireduce_scatter") {
                    MPI_Ireduce_scatter(send, out, keep.arrays[0].base, paradit_mpi_float(), paradit_mpi_sum(), comm, &$0)
                }
            }
        }
        stats.record("reduceScatter", sentFloats: counts.reduce(0, +) - counts[rank], receivedFloats: counts[rank] * (size - 1))
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        guard root >= 0 && root < size else { throw CommError.badArgument(operation: "broadcast", reason: "root \(root) is not a rank of \(size)") }
        try traced("broadcast", bytes: 4 * count, receivedFrom: rank == root ? nil : fromOne(root, count)) {
            try complete("MPI_Ibcast", waitingFor: rank == root ? nil : [root]) {
                MPI_Ibcast(buffer, Int32(count), paradit_mpi_float(), Int32(root), comm, &$0)
            }
        }
        stats.record("broadcast", sentFloats: rank == root ? count * (size - 1) : 0, receivedFloats: rank == root ? 0 : count)
    }

    public func barrier() throws {
        try traced("barrier", bytes: 0) { try complete("MPI_Ibarrier") { MPI_Ibarrier(comm, &$0) } }
        stats.record("barrier", sentFloats: 0, receivedFloats: 0)
    }

    // MARK: Point to point

    public func send(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int, tag: Int) throws {
        try traced("send", bytes: 4 * count) {
            try complete("MPI_Isend to rank \(peer)", waitingFor: [peer]) {
                MPI_Isend(buffer, Int32(count), paradit_mpi_float(), Int32(peer), Int32(tag), comm, &$0)
            }
        }
        stats.record("send", sentFloats: count, receivedFloats: 0)
    }

    public func recv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int, tag: Int) throws {
        try traced("recv", bytes: 4 * count, receivedFrom: fromOne(peer, count)) {
            try complete("MPI_Irecv from rank \(peer)", waitingFor: [peer]) {
                MPI_Irecv(buffer, Int32(count), paradit_mpi_float(), Int32(peer), Int32(tag), comm, &$0)
            }
        }
        stats.record("recv", sentFloats: 0, receivedFloats: count)
    }

    public func isend(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int, tag: Int) throws -> CommRequest {
        var request: MPI_Request? = nil
        try Self.checkMPI(MPI_Isend(buffer, Int32(count), paradit_mpi_float(), Int32(peer), Int32(tag), comm, &request), "MPI_Isend")
        stats.record("send", sentFloats: count, receivedFloats: 0)
        return MPIRequest(request, "MPI_Isend to rank \(peer)", comm: self, waitingFor: [peer])
    }

    public func irecv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int, tag: Int) -> CommRequest {
        var request: MPI_Request? = nil
        let code = MPI_Irecv(buffer, Int32(count), paradit_mpi_float(), Int32(peer), Int32(tag), comm, &request)
        stats.record("recv", sentFloats: 0, receivedFloats: count)
        return code == paradit_mpi_success()
            ? MPIRequest(request, "MPI_Irecv from rank \(peer)", comm: self, waitingFor: [peer], arrival: arrival(fromOne(peer, count)))
            : FailedRequest(code: code)
    }

    public func iallGather(_ send: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, counts: [Int]?) throws -> CommRequest {
        let c = try ints("iallGather", counts ?? Array(repeating: count, count: size))
        let d = Self.displacements(c)
        var request: MPI_Request? = nil
        // The count arrays must outlive the call: the request keeps them.
        let keep = RequestArrays([c, d])
        try Self.checkMPI(MPI_Iallgatherv(send, Int32(count), paradit_mpi_float(), out, keep.arrays[0].base, keep.arrays[1].base,
                                          paradit_mpi_float(), comm, &request), "MPI_Iallgatherv")
        stats.record("allGather", sentFloats: count * (size - 1), receivedFloats: c.reduce(0) { $0 + Int($1) } - count)
        return MPIRequest(request, "MPI_Iallgatherv", comm: self, keep: keep, arrival: arrival(c.enumerated().map { $0 == rank ? 0 : Int($1) }))
    }

    public func iallToAll(_ send: UnsafePointer<Float>, sendCounts: [Int], into out: UnsafeMutablePointer<Float>, recvCounts: [Int]) throws -> CommRequest {
        let sc = try ints("iallToAll", sendCounts), rc = try ints("iallToAll", recvCounts)
        let keep = RequestArrays([sc, Self.displacements(sc), rc, Self.displacements(rc)])
        var request: MPI_Request? = nil
        try Self.checkMPI(MPI_Ialltoallv(send, keep.arrays[0].base, keep.arrays[1].base, paradit_mpi_float(), out,
                                         keep.arrays[2].base, keep.arrays[3].base, paradit_mpi_float(), comm, &request), "MPI_Ialltoallv")
        stats.record("allToAll", sentFloats: sendCounts.reduce(0, +) - sendCounts[rank], receivedFloats: recvCounts.reduce(0, +) - recvCounts[rank])
        return MPIRequest(request, "MPI_Ialltoallv", comm: self, keep: keep,
                          arrival: arrival(recvCounts.enumerated().map { $0 == rank ? 0 : $1 }))
    }

    /// When a non-blocking receive posted now completes on the emulated links (nil without them).
    func arrival(_ floats: [Int]) -> Double? { links == nil ? nil : monotonicSeconds() + emulatedDelay(floats) }

    public func window(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> CommWindow {
        var win: MPI_Win? = nil
        try Self.checkMPI(MPI_Win_create(buffer, MPI_Aint(count * 4), 4, paradit_mpi_info_null(), comm, &win), "MPI_Win_create")
        let window = MPIWindow(win: win, comm: self)
        try window.fence()
        return window
    }

    public func subgroup(_ members: [Int]) throws -> Communicator {
        guard members.contains(rank), Set(members).count == members.count, members.allSatisfy({ $0 >= 0 && $0 < size }) else {
            throw CommError.badArgument(operation: "subgroup", reason: "members \(members) must be distinct ranks of \(size) and include this rank (\(rank))")
        }
        var parentGroup: MPI_Group? = nil, group: MPI_Group? = nil, sub: MPI_Comm? = nil
        MPI_Comm_group(comm, &parentGroup)
        let ranks = members.map { Int32($0) }
        MPI_Group_incl(parentGroup, Int32(ranks.count), ranks, &group)
        try Self.checkMPI(MPI_Comm_create_group(comm, group, 0, &sub), "MPI_Comm_create_group")
        MPI_Group_free(&group)
        MPI_Group_free(&parentGroup)
        MPI_Comm_set_errhandler(sub, paradit_mpi_errors_return())
        let child = MPICommunicator(comm: sub!, worldRanks: members.map { worldRanks[$0] })
        child.tracer = tracer
        child.links = links
        child.timeout = timeout
        return child
    }
}

/// Count and displacement arrays at stable addresses, alive until the request completes.
final class RequestArrays {
    let arrays: [(base: UnsafeMutablePointer<Int32>, count: Int)]
    init(_ values: [[Int32]]) {
        arrays = values.map { v in
            let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(v.count, 1))
            p.initialize(from: v, count: v.count)
            return (p, v.count)
        }
    }
    deinit { for a in arrays { a.base.deallocate() } }
}

final class MPIRequest: CommRequest {
    private var request: MPI_Request?
    private let call: String
    private let comm: MPICommunicator
    private let waitingFor: [Int]?
    private var keep: RequestArrays?
    /// With emulated links: when the data arrives (a transfer in flight costs no extra wait).
    private let arrival: Double?
    init(_ request: MPI_Request?, _ call: String, comm: MPICommunicator, waitingFor: [Int]? = nil, keep: RequestArrays? = nil,
         arrival: Double? = nil) {
        (self.request, self.call, self.comm, self.waitingFor) = (request, call, comm, waitingFor)
        self.keep = keep
        self.arrival = arrival
    }
    func wait() throws {
        try comm.poll(&request, call, waitingFor: waitingFor)
        keep = nil
        if let arrival { sleepUntil(arrival) }
    }
}

/// An MPI-3 RMA window; fences delimit access epochs.
final class MPIWindow: CommWindow {
    var win: MPI_Win?
    let comm: MPICommunicator
    init(win: MPI_Win?, comm: MPICommunicator) {
        self.win = win
        self.comm = comm
    }

    func put(_ source: UnsafePointer<Float>, count: Int, to target: Int, offset: Int) throws {
        try MPICommunicator.checkMPI(MPI_Put(source, Int32(count), paradit_mpi_float(), Int32(target), MPI_Aint(offset), Int32(count),
                                             paradit_mpi_float(), win), "MPI_Put")
        comm.stats.record("put", sentFloats: target == comm.rank ? 0 : count, receivedFloats: 0)
    }

    func get(_ destination: UnsafeMutablePointer<Float>, count: Int, from target: Int, offset: Int) throws {
        try MPICommunicator.checkMPI(MPI_Get(destination, Int32(count), paradit_mpi_float(), Int32(target), MPI_Aint(offset), Int32(count),
                                             paradit_mpi_float(), win), "MPI_Get")
        comm.stats.record("get", sentFloats: 0, receivedFloats: target == comm.rank ? 0 : count)
    }

    /// MPI_Win_fence blocks; a polled barrier first makes a stalled peer a timeout, not a hang.
    func fence() throws {
        try comm.complete("MPI_Ibarrier before MPI_Win_fence") { MPI_Ibarrier(comm.comm, &$0) }
        try MPICommunicator.checkMPI(MPI_Win_fence(0, win), "MPI_Win_fence")
    }

    func free() throws {
        try MPICommunicator.checkMPI(MPI_Win_fence(0, win), "MPI_Win_fence")
        try MPICommunicator.checkMPI(MPI_Win_free(&win), "MPI_Win_free")
    }
}

final class FailedRequest: CommRequest {
    let code: Int32
    init(code: Int32) { self.code = code }
    func wait() throws { try MPICommunicator.checkMPI(code, "MPI_Irecv") }
}
