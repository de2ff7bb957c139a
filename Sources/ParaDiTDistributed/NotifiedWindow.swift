import ParaDiTTensor

/// Memory of every rank of a group that peers write directly (one-sided), each write followed by a
/// notification the owner waits on: the alternative to matched send/recv for ring-like exchanges.
///
/// Every rank owns `count` floats (`buffer`) and `slots` notification counters. `put` copies data
/// into a peer's memory and, with `notify`, then increments one of the peer's counters; the owner
/// calls `waitNotify` until the counter reaches the number of notifications it expects. Counters
/// only grow (they are never reset), so a consumer names the total it has been promised so far
/// and no reset can race with a producer that is already one step ahead.
///
/// Completion and ordering: when the owner sees a counter reach a value, every put that preceded
/// those notifications (from the notifying rank to this rank) is visible in `buffer`; when `put`
/// returns, `source` may be reused. Nothing tells a producer that a region may be overwritten: the
/// protocol above decides, usually with a data-less `notify` back ("slot free") that the producer
/// waits for before its next put into that region.
///
/// Waits have the transport's deadline and see failed peers, like every other operation.
public protocol NotifiedWindow: AnyObject {
    /// This rank's memory (64-byte aligned, zeroed at creation).
    var buffer: UnsafeMutablePointer<Float> { get }
    var count: Int { get }
    /// Notification counters per rank.
    var slots: Int { get }
    /// Copies `count` floats from `source` into rank `target`'s memory at `offset`; with `notify`,
    /// then increments `target`'s counter `notify` once this put and every earlier one to `target`
    /// are visible there. Returns when `source` may be reused; never waits for the target.
    func put(_ source: UnsafePointer<Float>, count: Int, to target: Int, offset: Int, notify: Int?) throws
    /// Increments `target`'s counter `slot` without data (e.g. "your region may be written again").
    func notify(_ target: Int, slot: Int) throws
    /// Blocks until this rank's counter `slot` reaches `value`; `peer` is the rank that feeds the
    /// counter and `floats` what it delivered with these notifications (for the byte counters and
    /// the emulated links, on which the data arrives their delay after it was sent).
    func waitNotify(_ slot: Int, reaching value: Int, from peer: Int, floats: Int) throws
    /// The counter's current value, without waiting.
    func notifications(_ slot: Int) -> Int
    /// Releases the window (collective). On the local transport the memory lives until every
    /// rank has dropped its handle, so a late notification never lands in freed memory.
    func free() throws
}

extension NotifiedWindow {
    func bounds(_ op: String, target: Int, ranks: Int, offset: Int, count: Int, size: Int) throws {
        guard target >= 0 && target < ranks else {
            throw CommError.badArgument(operation: op, reason: "rank \(target) is not a rank of \(ranks)")
        }
        guard offset >= 0 && count >= 0 && offset + count <= size else {
            throw CommError.badArgument(operation: op, reason: "[\(offset), \(offset + count)) of rank \(target)'s window (\(size) floats)")
        }
    }

    func checkSlot(_ op: String, _ slot: Int) throws {
        guard slot >= 0 && slot < slots else {
            throw CommError.badArgument(operation: op, reason: "notification slot \(slot) of \(slots)")
        }
    }
}

extension NotifiedWindow {
    /// This rank's memory as a tensor (kept alive by the tensor's storage).
    public var memory: Tensor {
        Tensor(shape: [count], storage: TensorStorage(borrowing: buffer, count: count, owner: self), offset: 0)
    }

    /// `put` of a tensor's elements.
    public func put(_ x: Tensor, to target: Int, offset: Int, notify: Int?) throws {
        try withExtendedLifetime(x) { try put(x.data, count: x.count, to: target, offset: offset, notify: notify) }
    }
}
