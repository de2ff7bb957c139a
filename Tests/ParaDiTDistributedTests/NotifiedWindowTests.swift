import Foundation
import ParaDiTDistributed
import Testing

@Suite("Notified windows of the local transport")
struct NotifiedWindowTests {
    @Test("the self-test's notified ring passes on every world size", arguments: Array(1...8))
    func selfTest(n: Int) throws {
        let results = try LocalWorld.run(size: n) { comm in CommunicatorChecks.run(comm) }
        for (rank, checks) in results.enumerated() {
            let notified = checks.first { $0.0.hasPrefix("notified puts") }
            #expect(notified != nil && notified!.1 == nil, "rank \(rank): \(String(describing: notified))")
        }
    }

    /// A ring of puts into two alternating regions, each reused only after the consumer's "free"
    /// notification; every round's block must arrive whole (a missing release/acquire pair or a
    /// premature overwrite shows as a mixed block).
    @Test("many rounds of double-buffered puts arrive whole and in order", arguments: [2, 3, 4])
    func stress(n: Int) throws {
        let (floats, rounds) = (4096, 300)
        let failures = try LocalWorld.run(size: n) { comm -> Int in
            let w = try comm.notifiedWindow(count: 2 * floats, slots: 4)
            let (right, left) = ((comm.rank + 1) % n, (comm.rank + n - 1) % n)
            var block = [Float](repeating: 0, count: floats), bad = 0
            for round in 0..<rounds {
                let region = round % 2
                // Region `region` of the right neighbour is free once it has read it round/2 times.
                try w.waitNotify(2 + region, reaching: round / 2, from: right, floats: 0)
                for i in 0..<floats { block[i] = Float(comm.rank * 1_000_000 + round * 10_000 + i) }
                try block.withUnsafeBufferPointer { try w.put($0.baseAddress!, count: floats, to: right, offset: region * floats, notify: region) }
                try w.waitNotify(region, reaching: round / 2 + 1, from: left, floats: floats)
                let got = w.buffer + region * floats
                for i in 0..<floats where got[i] != Float(left * 1_000_000 + round * 10_000 + i) { bad += 1 }
                try w.notify(left, slot: 2 + region)
            }
            return bad
        }
        #expect(failures.allSatisfy { $0 == 0 }, "\(failures)")
    }

    struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }

    @Test("a waiting rank learns at once that its producer failed")
    func peerFailure() throws {
        let start = Date()
        let messages = try? LocalWorld.run(size: 2, timeout: 30) { comm -> String in
            let w = try comm.notifiedWindow(count: 4, slots: 1)
            if comm.rank == 1 { throw Boom() }
            do { try w.waitNotify(0, reaching: 1, from: 1, floats: 4); return "passed" } catch { return "\(error)" }
        }
        #expect(messages == nil)
        #expect(Date().timeIntervalSince(start) < 5, "the consumer must not wait for the timeout")
        let seen = try LocalWorld.run(size: 2, timeout: 30) { comm -> String in
            let w = try comm.notifiedWindow(count: 4, slots: 1)
            if comm.rank == 1 {
                // Late enough that rank 0 is waiting (not still leaving the window's creation).
                Thread.sleep(forTimeInterval: 0.2)
                comm.world.fail(rank: 1, reason: "out of memory")
                return ""
            }
            do { try w.waitNotify(0, reaching: 1, from: 1, floats: 4); return "passed" } catch { return "\(error)" }
        }
        #expect(seen[0].contains("rank 1 failed (out of memory)") && seen[0].contains("waitNotify"), "\(seen[0])")
    }

    @Test("a notification that never comes is reported after the timeout, naming the producer")
    func timeout() throws {
        let start = Date()
        let messages = try LocalWorld.run(size: 3, timeout: 0.5) { comm -> String in
            let w = try comm.notifiedWindow(count: 4, slots: 2)
            guard comm.rank == 0 else { return "" }
            do { try w.waitNotify(1, reaching: 1, from: 2, floats: 4); return "passed" } catch { return "\(error)" }
        }
        #expect(messages[0].contains("timed out") && messages[0].contains("waitNotify") && messages[0].contains("[2]"), "\(messages[0])")
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test("bad offsets, ranks and slots are refused; ranks must agree on the slots")
    func badArguments() throws {
        let messages = try LocalWorld.run(size: 2) { comm -> [String] in
            let w = try comm.notifiedWindow(count: 4, slots: 1)
            var x: [Float] = [1, 2]
            var out: [String] = []
            for attempt in [{ try w.put(&x, count: 2, to: 1 - comm.rank, offset: 3, notify: nil) },
                            { try w.put(&x, count: 1, to: 2, offset: 0, notify: nil) },
                            { try w.put(&x, count: 1, to: 0, offset: 0, notify: 1) },
                            { try w.waitNotify(-1, reaching: 1, from: 0, floats: 0) }] {
                do { try attempt(); out.append("accepted") } catch { out.append("\(error)") }
            }
            do { _ = try comm.notifiedWindow(count: 4, slots: 1 + comm.rank); out.append("accepted") } catch { out.append("\(error)") }
            return out
        }
        for m in messages {
            #expect(m[0].contains("[3, 5)") && m[1].contains("rank 2 is not a rank") && m[2].contains("slot 1 of 1")
                    && m[3].contains("slot -1"), "\(m)")
            #expect(m[4].contains("ranks disagree in notifiedWindow"), "\(m[4])")
        }
    }

    @Test("emulated links: a put arrives its transfer time after it was sent, hidden if sent early")
    func emulatedLinks() throws {
        // 1 M floats between two hosts at 1 Gbit/s: 32 ms.
        let links = LinkModel(nodeOfRank: [0, 1], interGbps: 1, interLatency: 0)
        let floats = 1 << 20
        let waits = try LocalWorld.run(size: 2, links: links) { comm -> [Double] in
            let w = try comm.notifiedWindow(count: floats, slots: 1)
            let data = [Float](repeating: 1, count: floats)
            var waits: [Double] = []
            for round in 0..<2 {
                try comm.barrier()
                if comm.rank == 0 {
                    try data.withUnsafeBufferPointer { try w.put($0.baseAddress!, count: floats, to: 1, offset: 0, notify: 0) }
                } else {
                    // Round 1 waits only after the transfer would have ended: no extra time.
                    if round == 1 { Thread.sleep(forTimeInterval: 0.05) }
                    let start = Date()
                    try w.waitNotify(0, reaching: round + 1, from: 0, floats: floats)
                    waits.append(Date().timeIntervalSince(start))
                    #expect(comm.stats.interNodeBytesReceived == 4 * floats * (round + 1))
                    #expect(comm.stats.byOperation["waitNotify"]?.bytesReceived == 4 * floats * (round + 1))
                }
            }
            if comm.rank == 0 { #expect(comm.stats.byOperation["put"]?.bytesSent == 8 * floats) }
            return waits
        }
        #expect(waits[1][0] >= 0.030 && waits[1][1] < 0.010, "\(waits[1])")
    }
}
