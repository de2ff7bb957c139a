import CParaDiTMPI
import Foundation

// Notified windows of the MPI transport: MPI-3 RMA in one passive-target epoch (MPI_Win_lock_all)
// held for the window's life, so no put ever waits for its target to call MPI.
//
// Each rank's memory (MPI_Win_allocate, displacement unit 1 byte) starts with the notification
// counters, 16 bytes per slot (count, send time), padded to 64 bytes; the floats follow.
//
// Memory ordering: a put is MPI_Put, then MPI_Win_flush(target), which returns only when the data
// is complete in the target's memory; only then is the counter incremented (MPI_Accumulate,
// MPI_SUM, atomic with respect to other accumulates) and flushed. The owner reads its counters
// with MPI_Win_sync and plain loads (the unified memory model's polling idiom; MPI_Fetch_and_op on
// itself deadlocks Open MPI 4.1's osc/ucx against concurrent accumulates), and the data after a
// final MPI_Win_sync, so its loads see the public copy as of the notification. A rank notifies "free" only after
// MPI_Win_sync, so its loads and stores of a region complete before a peer may write it again.

extension MPICommunicator {
    public func notifiedWindow(count: Int, slots: Int) throws -> NotifiedWindow {
        guard count >= 0, slots >= 0, count <= Int(Int32.max) else {
            throw CommError.badArgument(operation: "notifiedWindow", reason: "needs 0...\(Int32.max) floats and a non-negative slot count, got \(count) floats, \(slots) slots")
        }
        var mine = Int64(count)
        var counts = [Int64](repeating: 0, count: size)
        try Self.checkMPI(MPI_Allgather(&mine, 1, paradit_mpi_int64(), &counts, 1, paradit_mpi_int64(), comm), "MPI_Allgather")
        let header = MPINotifiedWindow.headerBytes(slots: slots), bytes = header + 4 * count
        var base: UnsafeMutableRawPointer? = nil
        var win: MPI_Win? = nil
        try Self.checkMPI(MPI_Win_allocate(MPI_Aint(max(bytes, 64)), 1, paradit_mpi_info_null(), comm, &base, &win), "MPI_Win_allocate")
        MPI_Win_set_errhandler(win, paradit_mpi_errors_return())
        base!.initializeMemory(as: UInt8.self, repeating: 0, count: max(bytes, 64))
        try Self.checkMPI(MPI_Win_lock_all(MPI_MODE_NOCHECK, win), "MPI_Win_lock_all")
        try Self.checkMPI(MPI_Win_sync(win), "MPI_Win_sync")
        // Nobody writes before every counter is zeroed.
        try Self.checkMPI(MPI_Barrier(comm), "MPI_Barrier")
        stats.record("notifiedWindow", sentFloats: 0, receivedFloats: 0)
        return MPINotifiedWindow(comm: self, win: win, base: base!, slots: slots, counts: counts.map { Int($0) })
    }
}

/// One rank's handle on an MPI notified window.
final class MPINotifiedWindow: NotifiedWindow {
    let comm: MPICommunicator
    var win: MPI_Win?
    let base: UnsafeMutableRawPointer
    let slots: Int
    let counts: [Int]
    let header: Int

    static func headerBytes(slots: Int) -> Int { (16 * slots + 63) / 64 * 64 }

    init(comm: MPICommunicator, win: MPI_Win?, base: UnsafeMutableRawPointer, slots: Int, counts: [Int]) {
        (self.comm, self.win, self.base, self.slots, self.counts) = (comm, win, base, slots, counts)
        header = Self.headerBytes(slots: slots)
    }

    var buffer: UnsafeMutablePointer<Float> { (base + header).assumingMemoryBound(to: Float.self) }
    var count: Int { counts[comm.rank] }

    func check(_ code: Int32, _ call: String) throws { try MPICommunicator.checkMPI(code, call) }

    func put(_ source: UnsafePointer<Float>, count: Int, to target: Int, offset: Int, notify slot: Int?) throws {
        try bounds("put", target: target, ranks: comm.size, offset: offset, count: count,
                   size: target >= 0 && target < comm.size ? counts[target] : 0)
        if let slot { try checkSlot("put", slot) }
        try comm.traced("put", bytes: 4 * count) {
            try check(MPI_Put(source, Int32(count), paradit_mpi_float(), Int32(target), MPI_Aint(header + 4 * offset), Int32(count),
                              paradit_mpi_float(), win), "MPI_Put")
            if let slot {
                try signal(target, slot)
            } else {
                try check(MPI_Win_flush_local(Int32(target), win), "MPI_Win_flush_local")
            }
        }
        comm.stats.record("put", sentFloats: target == comm.rank ? 0 : count, receivedFloats: 0)
    }

    func notify(_ target: Int, slot: Int) throws {
        try bounds("notify", target: target, ranks: comm.size, offset: 0, count: 0, size: 0)
        try checkSlot("notify", slot)
        try check(MPI_Win_sync(win), "MPI_Win_sync")
        try signal(target, slot)
        comm.stats.record("notify", sentFloats: 0, receivedFloats: 0)
    }

    /// Completes every put to `target` there, then increments its counter `slot` (with emulated
    /// links, first raises its send time to now, flushed before the count moves).
    func signal(_ target: Int, _ slot: Int) throws {
        let t = Int32(target)
        try check(MPI_Win_flush(t, win), "MPI_Win_flush")
        if comm.links != nil {
            var now = Int64(monotonicSeconds() * 1e9)
            try check(MPI_Accumulate(&now, 1, paradit_mpi_int64(), t, MPI_Aint(16 * slot + 8), 1, paradit_mpi_int64(),
                                     paradit_mpi_max(), win), "MPI_Accumulate")
            try check(MPI_Win_flush(t, win), "MPI_Win_flush")
        }
        var one: Int64 = 1
        try check(MPI_Accumulate(&one, 1, paradit_mpi_int64(), t, MPI_Aint(16 * slot), 1, paradit_mpi_int64(), paradit_mpi_sum(), win),
                  "MPI_Accumulate")
        try check(MPI_Win_flush(t, win), "MPI_Win_flush")
    }

    /// This rank's header word at `displacement`, as of now. The MPI-3 unified memory model lets
    /// the owner poll its window memory with plain loads after MPI_Win_sync (remote accumulates
    /// write whole aligned words); MPI_Win_sync is opaque to the compiler, so every poll reloads.
    func read(_ displacement: Int) throws -> Int {
        try check(MPI_Win_sync(win), "MPI_Win_sync")
        return Int((base + displacement).assumingMemoryBound(to: Int64.self).pointee)
    }

    /// Lets components that apply remote operations in software (osc/pt2pt) make progress.
    func progress() {
        var flag: Int32 = 0
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm.comm, &flag, paradit_mpi_status_ignore())
    }

    func waitNotify(_ slot: Int, reaching value: Int, from peer: Int, floats: Int) throws {
        try checkSlot("waitNotify", slot)
        let deadline = monotonicSeconds() + comm.timeout
        var pause = 1e-6
        // Polls with a growing pause (up to 100 µs), so a waiting rank leaves its core to the
        // ranks that compute; this is a plain thread, never a Swift concurrency task.
        while try read(16 * slot) < value {
            guard monotonicSeconds() < deadline else {
                throw CommError.timedOut(rank: comm.worldRank, operation: "waitNotify (slot \(slot), notification \(value) from rank \(peer))",
                                         seconds: comm.timeout, waitingFor: [peer >= 0 && peer < comm.size ? comm.worldRanks[peer] : peer])
            }
            progress()
            Thread.sleep(forTimeInterval: pause)
            pause = min(2 * pause, 100e-6)
        }
        try check(MPI_Win_sync(win), "MPI_Win_sync")
        comm.stats.record("waitNotify", sentFloats: 0, receivedFloats: floats)
        guard let links = comm.links, peer >= 0 && peer < comm.size else { return }
        // Another host's clock may differ: the transfer never counts as sent later than now.
        let sent = min(Double(try read(16 * slot + 8)) / 1e9, monotonicSeconds())
        let (me, from) = (comm.worldRank, [comm.worldRanks[peer]])
        comm.stats.recordInterNode(bytes: links.interNodeBytes(me: me, peers: from, bytes: [4 * floats]))
        sleepUntil(sent + links.delay(me: me, peers: from, bytes: [4 * floats]))
    }

    func notifications(_ slot: Int) -> Int {
        guard slot >= 0 && slot < slots else { return 0 }
        return (try? read(16 * slot)) ?? 0
    }

    func free() throws {
        guard win != nil else { return }
        try check(MPI_Win_unlock_all(win), "MPI_Win_unlock_all")
        try check(MPI_Win_free(&win), "MPI_Win_free")
        win = nil
    }
}
