import Foundation
import ParaDiTDistributed
import ParaDiTTensor
import Testing

/// The value rank r holds at index i in these tests: distinct for every (rank, index).
func value(_ r: Int, _ i: Int) -> Float { Float(r * 1000 + i) }

/// Unequal per-rank sizes for a world of n ranks (some zero).
func unequal(_ n: Int) -> [Int] { (0..<n).map { ($0 * 7 + 3) % 5 } }

@Suite("Local transport collectives equal their serial definition")
struct LocalTransportTests {
    static let worlds = Array(1...8)

    @Test("allGather, equal and unequal sizes", arguments: worlds)
    func allGather(n: Int) throws {
        for counts in [Array(repeating: 3, count: n), unequal(n)] {
            let outs = try LocalWorld.run(size: n) { comm -> [Float] in
                let mine = (0..<counts[comm.rank]).map { value(comm.rank, $0) }
                var out = [Float](repeating: -1, count: counts.reduce(0, +))
                try mine.withUnsafeBufferPointer { s in try out.withUnsafeMutableBufferPointer { o in
                    try comm.allGather(s.baseAddress ?? UnsafePointer(bitPattern: 64)!, count: counts[comm.rank], into: o.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!, counts: counts)
                } }
                let st = comm.stats.byOperation["allGather"]!
                #expect(st.bytesSent == 4 * counts[comm.rank] * (n - 1))
                #expect(st.bytesReceived == 4 * (counts.reduce(0, +) - counts[comm.rank]))
                return out
            }
            let expected = (0..<n).flatMap { r in (0..<counts[r]).map { value(r, $0) } }
            for out in outs { #expect(out == expected, "n=\(n) counts \(counts)") }
        }
    }

    @Test("allToAll, equal and unequal splits", arguments: worlds)
    func allToAll(n: Int) throws {
        // Rank s sends size(s, d) floats to rank d.
        @Sendable func size(_ s: Int, _ d: Int) -> Int { (s + 2 * d) % 4 }
        let outs = try LocalWorld.run(size: n) { comm -> [Float] in
            let r = comm.rank
            let sendCounts = (0..<n).map { size(r, $0) }, recvCounts = (0..<n).map { size($0, r) }
            var send: [Float] = []
            for d in 0..<n { send += (0..<size(r, d)).map { value(r, d * 100 + $0) } }
            var out = [Float](repeating: -1, count: recvCounts.reduce(0, +))
            try send.withUnsafeBufferPointer { s in try out.withUnsafeMutableBufferPointer { o in
                try comm.allToAll(s.baseAddress ?? UnsafePointer(bitPattern: 64)!, sendCounts: sendCounts,
                                  into: o.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!, recvCounts: recvCounts)
            } }
            let st = comm.stats.byOperation["allToAll"]!
            #expect(st.bytesSent == 4 * (sendCounts.reduce(0, +) - sendCounts[r]))
            #expect(st.bytesReceived == 4 * (recvCounts.reduce(0, +) - recvCounts[r]))
            return out
        }
        for (r, out) in outs.enumerated() {
            let expected = (0..<n).flatMap { s in (0..<size(s, r)).map { value(s, r * 100 + $0) } }
            #expect(out == expected, "n=\(n) rank \(r)")
        }
    }

    @Test("allReduce and reduceScatter sum in rank order, identically on every rank", arguments: worlds)
    func reductions(n: Int) throws {
        let counts = unequal(n).map { $0 + 1 }, total = counts.reduce(0, +)
        let results = try LocalWorld.run(size: n, threadsPerRank: 1) { comm -> ([Float], [Float]) in
            var buffer = (0..<total).map { Float(comm.rank + 1) * 0.1 + Float($0) }
            let send = buffer
            try buffer.withUnsafeMutableBufferPointer { try comm.allReduce($0.baseAddress!, count: total) }
            var part = [Float](repeating: 0, count: counts[comm.rank])
            try send.withUnsafeBufferPointer { s in try part.withUnsafeMutableBufferPointer { p in
                try comm.reduceScatter(s.baseAddress!, counts: counts, into: p.baseAddress!)
            } }
            return (buffer, part)
        }
        var expected = [Float](repeating: 0, count: total)
        for r in 0..<n { for i in 0..<total { expected[i] += Float(r + 1) * 0.1 + Float(i) } }
        var offset = 0
        for (r, (all, part)) in results.enumerated() {
            #expect(all == expected, "allReduce n=\(n) rank \(r)")
            #expect(part == Array(expected[offset..<(offset + counts[r])]), "reduceScatter n=\(n) rank \(r)")
            offset += counts[r]
        }
    }

    @Test("broadcast from every root, barrier", arguments: worlds)
    func broadcast(n: Int) throws {
        for root in 0..<n {
            let outs = try LocalWorld.run(size: n) { comm -> [Float] in
                var buffer = (0..<5).map { value(comm.rank, $0) }
                try buffer.withUnsafeMutableBufferPointer { try comm.broadcast($0.baseAddress!, count: 5, root: root) }
                try comm.barrier()
                return buffer
            }
            for out in outs { #expect(out == (0..<5).map { value(root, $0) }) }
        }
    }

    @Test("send/recv around a ring, blocking and non-blocking, in order per tag", arguments: [2, 3, 5, 8])
    func ring(n: Int) throws {
        let outs = try LocalWorld.run(size: n) { comm -> [Float] in
            let next = (comm.rank + 1) % n, prev = (comm.rank + n - 1) % n
            var first = [Float](repeating: 0, count: 4), second = [Float](repeating: 0, count: 4)
            let a = (0..<4).map { value(comm.rank, $0) }, b = (0..<4).map { value(comm.rank, 10 + $0) }
            try first.withUnsafeMutableBufferPointer { f in try second.withUnsafeMutableBufferPointer { s in
                let pending = comm.irecv(s.baseAddress!, count: 4, from: prev, tag: 7)
                try a.withUnsafeBufferPointer { _ = try comm.isend($0.baseAddress!, count: 4, to: next, tag: 3) }
                try b.withUnsafeBufferPointer { try comm.send($0.baseAddress!, count: 4, to: next, tag: 7) }
                try comm.recv(f.baseAddress!, count: 4, from: prev, tag: 3)
                try pending.wait()
            } }
            #expect(comm.stats.byOperation["send"]!.bytesSent == 32 && comm.stats.byOperation["recv"]!.bytesReceived == 32)
            return first + second
        }
        for (r, out) in outs.enumerated() {
            let prev = (r + n - 1) % n
            #expect(out == (0..<4).map { value(prev, $0) } + (0..<4).map { value(prev, 10 + $0) })
        }
    }
}

@Suite("Local transport failure behaviour")
struct LocalFailureTests {
    struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }

    @Test("a throwing rank makes the others fail at once, naming it")
    func throwingRank() {
        let start = Date()
        do {
            _ = try LocalWorld.run(size: 4, timeout: 30) { comm -> Int in
                if comm.rank == 2 { throw Boom() }
                var x: Float = 1
                try comm.allReduce(&x, count: 1)
                return 0
            }
            Issue.record("the world succeeded")
        } catch {
            #expect(error is Boom, "\(error)")
        }
        #expect(Date().timeIntervalSince(start) < 5, "others must not wait for the timeout")
    }

    @Test("peers of a failed rank see which rank and operation")
    func peerMessage() throws {
        let messages = try LocalWorld.run(size: 3, timeout: 30) { comm -> String in
            if comm.rank == 0 {
                comm.world.fail(rank: 0, reason: "out of memory")
                return ""
            }
            do { try comm.barrier(); return "passed" } catch { return "\(error)" }
        }
        for m in messages.dropFirst() { #expect(m.contains("rank 0 failed (out of memory)") && m.contains("barrier"), "\(m)") }
    }

    @Test("a rank that never arrives is reported after the timeout, not hung on")
    func missingRank() throws {
        let start = Date()
        let messages = try LocalWorld.run(size: 3, timeout: 0.5) { comm -> String in
            if comm.rank == 1 { return "skipped" }
            do { try comm.barrier(); return "passed" } catch { return "\(error)" }
        }
        #expect(messages[0].contains("timed out") && messages[0].contains("[1]"), "\(messages[0])")
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test("mismatched collectives are an error on every rank")
    func mismatch() throws {
        let messages = try LocalWorld.run(size: 2) { comm -> String in
            do {
                var x: [Float] = [1, 2]
                if comm.rank == 0 { try x.withUnsafeMutableBufferPointer { try comm.allReduce($0.baseAddress!, count: 2) } }
                else { try comm.barrier() }
                return "passed"
            } catch { return "\(error)" }
        }
        for m in messages { #expect(m.contains("ranks disagree"), "\(m)") }
    }
}
