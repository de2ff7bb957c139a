/// A group of ranks that exchange Float32 buffers. Every collective must be called by every rank
/// of the group, in the same order, with matching sizes; a mismatch, a failed rank or a timeout
/// is an error on every rank (never a silent hang).
///
/// Buffers are raw pointers with explicit element counts, like the kernels: a collective reads
/// `send` and writes `out` before it returns. Block layouts are rank order, consecutive.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Bytes moved by this rank, per operation.
    var stats: CommStats { get }

    /// out = the `counts[r]` floats of every rank r, in rank order (counts nil: `count` each).
    func allGather(_ send: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, counts: [Int]?) throws
    /// Rank r receives block r of everyone's send buffer: send holds `sendCounts[r]` floats for
    /// each rank r in turn; out gets `recvCounts[r]` floats from each rank r in turn.
    func allToAll(_ send: UnsafePointer<Float>, sendCounts: [Int], into out: UnsafeMutablePointer<Float>, recvCounts: [Int]) throws
    /// buffer = the elementwise sum over ranks, summed in rank order (bit-identical on every rank).
    func allReduce(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// out = block `rank` of the elementwise sum of everyone's send (blocks of `counts[r]` floats).
    func reduceScatter(_ send: UnsafePointer<Float>, counts: [Int], into out: UnsafeMutablePointer<Float>) throws
    /// buffer = root's buffer on every rank.
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws
    func barrier() throws
    /// Point to point: messages between a pair with the same tag arrive in order.
    func send(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int, tag: Int) throws
    func recv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int, tag: Int) throws
    /// Non-blocking forms: the buffer must stay valid (and, for irecv, unread) until `wait()`.
    func isend(_ buffer: UnsafePointer<Float>, count: Int, to peer: Int, tag: Int) throws -> CommRequest
    func irecv(_ buffer: UnsafeMutablePointer<Float>, count: Int, from peer: Int, tag: Int) -> CommRequest
    /// Non-blocking collectives: every rank must start them in the same order and wait for them;
    /// `send` and `out` must stay untouched until `wait()` returns.
    func iallGather(_ send: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, counts: [Int]?) throws -> CommRequest
    func iallToAll(_ send: UnsafePointer<Float>, sendCounts: [Int], into out: UnsafeMutablePointer<Float>, recvCounts: [Int]) throws -> CommRequest
    /// Registers `buffer` of every rank (collective) for one-sided put and get.
    func window(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> CommWindow
    /// Allocates `count` floats of memory on every rank (collective; counts may differ by rank)
    /// that peers write with notified puts, and `slots` notification counters per rank.
    func notifiedWindow(count: Int, slots: Int) throws -> NotifiedWindow
    /// The communicator of a subset of this group (ranks numbered as here); every member calls it
    /// with the same list, and its ranks are numbered in list order.
    func subgroup(_ members: [Int]) throws -> Communicator
}

/// A pending non-blocking operation.
public protocol CommRequest: AnyObject {
    /// Blocks until the operation completes; throws what the operation would have thrown.
    func wait() throws
}

/// Registered buffers of every rank of a group, for one-sided access. Accesses happen between two
/// `fence()` calls (collective); the closing fence is the completion notification: after it, every
/// put is visible in its target's buffer and every get has landed.
public protocol CommWindow: AnyObject {
    /// Writes `count` floats from `source` into rank `target`'s buffer at `offset`.
    func put(_ source: UnsafePointer<Float>, count: Int, to target: Int, offset: Int) throws
    /// Reads `count` floats of rank `target`'s buffer at `offset` into `destination`.
    func get(_ destination: UnsafeMutablePointer<Float>, count: Int, from target: Int, offset: Int) throws
    func fence() throws
    /// Releases the window (collective).
    func free() throws
}

/// What can go wrong between ranks; each message names the rank and the operation.
public enum CommError: Error, CustomStringConvertible, Equatable {
    case peerFailed(rank: Int, reason: String, during: String)
    case timedOut(rank: Int, operation: String, seconds: Double, waitingFor: [Int])
    case mismatch(operation: String, reason: String)
    case badArgument(operation: String, reason: String)

    public var description: String {
        switch self {
        case let .peerFailed(rank, reason, during):
            return "rank \(rank) failed (\(reason)); this rank was in \(during)"
        case let .timedOut(rank, operation, seconds, waitingFor):
            return "rank \(rank) timed out after \(seconds) s in \(operation), waiting for rank(s) \(waitingFor)"
        case let .mismatch(operation, reason):
            return "ranks disagree in \(operation): \(reason)"
        case let .badArgument(operation, reason):
            return "\(operation): \(reason)"
        }
    }
}

/// Per-operation counters of one rank.
public final class CommStats: @unchecked Sendable {
    public struct Counter: Equatable, Sendable {
        public var calls = 0
        public var bytesSent = 0
        public var bytesReceived = 0
    }

    public private(set) var byOperation: [String: Counter] = [:]

    public init() {}

    func record(_ op: String, sentFloats: Int, receivedFloats: Int) {
        var c = byOperation[op, default: Counter()]
        c.calls += 1
        c.bytesSent += sentFloats * 4
        c.bytesReceived += receivedFloats * 4
        byOperation[op] = c
    }

    /// Bytes received over emulated inter-node links (with a link model).
    public private(set) var interNodeBytesReceived = 0

    func recordInterNode(bytes: Int) { interNodeBytesReceived += bytes }

    public var totalSent: Int { byOperation.values.reduce(0) { $0 + $1.bytesSent } }
    public var totalReceived: Int { byOperation.values.reduce(0) { $0 + $1.bytesReceived } }
}
