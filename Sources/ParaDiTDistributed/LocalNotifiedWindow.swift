import Foundation
import Synchronization

// Notified windows of the local transport: a put is one memcpy into the peer's memory followed by
// an atomic increment of the peer's counter; no mailbox, no matching receive.
//
// Memory ordering: the producer writes the data, then increments the counter with release
// ordering; the consumer loads the counter with acquire ordering, so once it sees the increment
// every byte written before it is visible (release/acquire pair on the counter). The same pair
// orders the other direction: a consumer that reads a region and then notifies "free" (release)
// happens before the producer's next write into it, which follows its acquire load of that
// notification. The world's condition variable only wakes sleeping waiters: it carries no data,
// and the counter is re-read (acquire) under its lock, so a wake-up cannot be lost.

/// One notification counter: the notifications received, and when the latest was sent (monotonic
/// nanoseconds; for the emulated links).
final class NotificationCounter: Sendable {
    let value = Atomic<Int>(0)
    let sentNanos = Atomic<Int>(0)
}

/// Every rank's memory and counters of one window, shared by all ranks' handles: it is freed when
/// the last handle goes, so a notification sent after its target finished can never land in
/// freed memory.
final class LocalNotifiedMemory: @unchecked Sendable {
    let buffers: [UnsafeMutablePointer<Float>]
    let counts: [Int]
    let counters: [[NotificationCounter]]

    init(counts: [Int], slots: Int) {
        self.counts = counts
        buffers = counts.map { count in
            UnsafeMutableRawPointer.allocate(byteCount: 4 * max(count, 1), alignment: 64)
                .initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
        }
        counters = counts.map { _ in (0..<slots).map { _ in NotificationCounter() } }
    }

    deinit { for b in buffers { b.deallocate() } }
}

extension LocalCommunicator {
    public func notifiedWindow(count: Int, slots: Int) throws -> NotifiedWindow {
        guard count >= 0, slots >= 0 else {
            throw CommError.badArgument(operation: "notifiedWindow", reason: "needs a non-negative size and slot count, got \(count) floats, \(slots) slots")
        }
        var memory: LocalNotifiedMemory?
        try operation("notifiedWindow", bytes: 0, receivedFrom: Array(repeating: 0, count: size)) {
            try collective(Publication(operation: "notifiedWindow", counts: [count, slots]), agree: { all in
                all.allSatisfy { $0.counts[1] == slots } ? nil : "slot counts differ between ranks"
            }) { all in
                memory = world.shared { LocalNotifiedMemory(counts: all.map { $0.counts[0] }, slots: slots) }
            }
        }
        stats.record("notifiedWindow", sentFloats: 0, receivedFloats: 0)
        return LocalNotifiedWindow(comm: self, memory: memory!)
    }
}

/// One rank's handle on a local notified window.
final class LocalNotifiedWindow: NotifiedWindow {
    let comm: LocalCommunicator
    let memory: LocalNotifiedMemory

    init(comm: LocalCommunicator, memory: LocalNotifiedMemory) {
        (self.comm, self.memory) = (comm, memory)
    }

    var buffer: UnsafeMutablePointer<Float> { memory.buffers[comm.rank] }
    var count: Int { memory.counts[comm.rank] }
    var slots: Int { memory.counters[comm.rank].count }

    func put(_ source: UnsafePointer<Float>, count: Int, to target: Int, offset: Int, notify slot: Int?) throws {
        try bounds("put", target: target, ranks: comm.size, offset: offset, count: count,
                   size: target >= 0 && target < comm.size ? memory.counts[target] : 0)
        if let slot { try checkSlot("put", slot) }
        traced("put", bytes: 4 * count) {
            (memory.buffers[target] + offset).update(from: source, count: count)
            if let slot { signal(target, slot) }
        }
        comm.stats.record("put", sentFloats: target == comm.rank ? 0 : count, receivedFloats: 0)
    }

    func notify(_ target: Int, slot: Int) throws {
        try bounds("notify", target: target, ranks: comm.size, offset: 0, count: 0, size: 0)
        try checkSlot("notify", slot)
        signal(target, slot)
        comm.stats.record("notify", sentFloats: 0, receivedFloats: 0)
    }

    /// Stamps the send time, then publishes (release) everything written before.
    func signal(_ target: Int, _ slot: Int) {
        let counter = memory.counters[target][slot]
        counter.sentNanos.max(Int(monotonicSeconds() * 1e9), ordering: .relaxed)
        counter.value.wrappingAdd(1, ordering: .releasing)
        let world = comm.world
        world.condition.lock()
        world.condition.broadcast()
        world.condition.unlock()
    }

    func waitNotify(_ slot: Int, reaching value: Int, from peer: Int, floats: Int) throws {
        try checkSlot("waitNotify", slot)
        let counter = memory.counters[comm.rank][slot]
        if counter.value.load(ordering: .acquiring) < value {
            let world = comm.world
            world.condition.lock()
            defer { world.condition.unlock() }
            try world.waitLocked(rank: comm.rank, operation: "waitNotify (slot \(slot), notification \(value) from rank \(peer))",
                                 waitingFor: { [peer] }) { counter.value.load(ordering: .acquiring) >= value }
        }
        comm.stats.record("waitNotify", sentFloats: 0, receivedFloats: floats)
        guard let links = comm.world.links, peer >= 0 && peer < comm.size else { return }
        // Ordered by the acquire load above: the stamp of the latest notification seen.
        let sent = Double(counter.sentNanos.load(ordering: .relaxed)) / 1e9
        let (me, from) = (comm.worldRank, [comm.world.worldRanks[peer]])
        comm.stats.recordInterNode(bytes: links.interNodeBytes(me: me, peers: from, bytes: [4 * floats]))
        sleepUntil(sent + links.delay(me: me, peers: from, bytes: [4 * floats]))
    }

    func notifications(_ slot: Int) -> Int {
        slot >= 0 && slot < slots ? memory.counters[comm.rank][slot].value.load(ordering: .acquiring) : 0
    }

    /// Nothing to synchronise: the memory goes with the last handle.
    func free() throws {}

    func traced(_ name: String, bytes: Int, _ body: () -> Void) {
        guard let tracer = comm.world.tracer else { return body() }
        tracer.span(name, category: "comm", rank: comm.worldRank, bytes: bytes, body)
    }
}
