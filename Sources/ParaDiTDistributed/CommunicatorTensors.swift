import ParaDiTTensor

/// The operations on tensors: what the strategies call. Counts are elements; block layouts are
/// rank order, as in the pointer forms. Every tensor stays alive until its operation completes
/// (for the non-blocking forms, until `wait()` returns).
extension Communicator {
    /// out = every rank's x in rank order (`counts[r]` elements from rank r; nil: x.count each).
    public func allGather(_ x: Tensor, into out: Tensor, counts: [Int]? = nil) throws {
        try checkSizes("allGather", out.count >= (counts?.reduce(0, +) ?? x.count * size) && (counts?[rank] ?? x.count) == x.count)
        try withExtendedLifetime((x, out)) { try allGather(x.data, count: x.count, into: out.data, counts: counts) }
    }

    public func allToAll(_ x: Tensor, sendCounts: [Int], into out: Tensor, recvCounts: [Int]) throws {
        try checkSizes("allToAll", x.count >= sendCounts.reduce(0, +) && out.count >= recvCounts.reduce(0, +))
        try withExtendedLifetime((x, out)) { try allToAll(x.data, sendCounts: sendCounts, into: out.data, recvCounts: recvCounts) }
    }

    /// x = the sum of every rank's x, on every rank.
    public func allReduce(_ x: Tensor) throws {
        try withExtendedLifetime(x) { try allReduce(x.data, count: x.count) }
    }

    /// x = root's x on every rank.
    public func broadcast(_ x: Tensor, root: Int) throws {
        try withExtendedLifetime(x) { try broadcast(x.data, count: x.count, root: root) }
    }

    public func isend(_ x: Tensor, to peer: Int, tag: Int) throws -> CommRequest {
        try withExtendedLifetime(x) { TensorRequest(try isend(x.data, count: x.count, to: peer, tag: tag), keeping: [x]) }
    }

    /// Receives x.count elements into x.
    public func irecv(into x: Tensor, from peer: Int, tag: Int) -> CommRequest {
        withExtendedLifetime(x) { TensorRequest(irecv(x.data, count: x.count, from: peer, tag: tag), keeping: [x]) }
    }

    public func iallGather(_ x: Tensor, into out: Tensor, counts: [Int]? = nil) throws -> CommRequest {
        try checkSizes("iallGather", out.count >= (counts?.reduce(0, +) ?? x.count * size) && (counts?[rank] ?? x.count) == x.count)
        return try withExtendedLifetime((x, out)) {
            TensorRequest(try iallGather(x.data, count: x.count, into: out.data, counts: counts), keeping: [x, out])
        }
    }

    func checkSizes(_ operation: String, _ ok: Bool) throws {
        guard ok else { throw CommError.badArgument(operation: operation, reason: "the tensors do not hold the counts given") }
    }
}

/// A request that keeps its tensors alive until it completes.
final class TensorRequest: CommRequest {
    let request: CommRequest
    var tensors: [Tensor]

    init(_ request: CommRequest, keeping tensors: [Tensor]) { (self.request, self.tensors) = (request, tensors) }

    func wait() throws {
        defer { tensors = [] }
        try request.wait()
    }
}
