/// A self-test of a communicator against the serial definition of every operation, runnable on
/// any transport (`paradit selftest comm`, under mpirun for MPI). Every rank must run it.
public enum CommunicatorChecks {
    /// (check name, failure description or nil) for every check, on this rank.
    public static func run(_ comm: Communicator) -> [(String, String?)] {
        let checks: [(String, (Communicator) throws -> String?)] = [
            ("allGather, unequal sizes", allGather), ("allToAll, unequal splits", allToAll),
            ("allReduce", allReduce), ("reduceScatter", reduceScatter), ("broadcast", broadcast),
            ("ring send/recv and isend/irecv", ring), ("subgroups of even and odd ranks", subgroups),
            ("non-blocking allGather and allToAll", nonBlocking), ("one-sided put and get", oneSided),
            ("notified puts around the ring, regions reused after a notification back", notifiedPut),
        ]
        var results: [(String, String?)] = []
        for (name, check) in checks {
            do {
                results.append((name, try check(comm)))
            } catch let error as CommError {
                results.append((name, "\(error)"))
                // After a timeout every later check would wait out its own: stop here.
                if case .timedOut = error { break }
            } catch {
                results.append((name, "\(error)"))
            }
        }
        return results
    }

    static func v(_ r: Int, _ i: Int) -> Float { Float(r * 1000 + i) }

    static func allGather(_ c: Communicator) throws -> String? {
        let counts = (0..<c.size).map { ($0 * 7 + 3) % 5 }
        let mine = (0..<counts[c.rank]).map { v(c.rank, $0) }
        var out = [Float](repeating: -1, count: counts.reduce(0, +) + 1)
        let before = c.stats.byOperation["allGather"] ?? CommStats.Counter()
        try mine.withUnsafeBufferPointer { s in try out.withUnsafeMutableBufferPointer { o in
            try c.allGather(s.baseAddress ?? UnsafePointer(o.baseAddress!), count: counts[c.rank], into: o.baseAddress!, counts: counts)
        } }
        let after = c.stats.byOperation["allGather"]!
        let total = counts.reduce(0, +)
        guard after.bytesSent - before.bytesSent == 4 * counts[c.rank] * (c.size - 1),
              after.bytesReceived - before.bytesReceived == 4 * (total - counts[c.rank]) else {
            return "byte counters \(after) do not match the sizes moved"
        }
        let expected = (0..<c.size).flatMap { r in (0..<counts[r]).map { v(r, $0) } }
        return Array(out.dropLast()) == expected ? nil : "got \(out.prefix(8))…"
    }

    static func allToAll(_ c: Communicator) throws -> String? {
        func n(_ s: Int, _ d: Int) -> Int { (s + 2 * d) % 4 }
        let p = c.size, r = c.rank
        var send: [Float] = []
        for d in 0..<p { send += (0..<n(r, d)).map { v(r, d * 100 + $0) } }
        var out = [Float](repeating: -1, count: (0..<p).reduce(0) { $0 + n($1, r) } + 1)
        send.append(0)
        let before = c.stats.byOperation["allToAll"] ?? CommStats.Counter()
        try send.withUnsafeBufferPointer { s in try out.withUnsafeMutableBufferPointer { o in
            try c.allToAll(s.baseAddress!, sendCounts: (0..<p).map { n(r, $0) }, into: o.baseAddress!, recvCounts: (0..<p).map { n($0, r) })
        } }
        let after = c.stats.byOperation["allToAll"]!
        let sent = (0..<p).filter { $0 != r }.reduce(0) { $0 + n(r, $1) }, received = (0..<p).filter { $0 != r }.reduce(0) { $0 + n($1, r) }
        guard after.bytesSent - before.bytesSent == 4 * sent, after.bytesReceived - before.bytesReceived == 4 * received else {
            return "byte counters \(after) do not match the sizes moved"
        }
        let expected = (0..<p).flatMap { s in (0..<n(s, r)).map { v(s, r * 100 + $0) } }
        return Array(out.dropLast()) == expected ? nil : "rank \(r) got \(out.prefix(8))…"
    }

    static func allReduce(_ c: Communicator) throws -> String? {
        var x = (0..<5).map { Float(c.rank + 1) + Float($0) }
        try x.withUnsafeMutableBufferPointer { try c.allReduce($0.baseAddress!, count: 5) }
        let p = Float(c.size)
        let expected = (0..<5).map { p * (p + 1) / 2 + p * Float($0) }
        return x == expected ? nil : "got \(x), expected \(expected)"
    }

    static func reduceScatter(_ c: Communicator) throws -> String? {
        let counts = (0..<c.size).map { $0 % 3 + 1 }, total = counts.reduce(0, +)
        let send = (0..<total).map { Float(c.rank) + Float($0) }
        var out = [Float](repeating: 0, count: counts[c.rank])
        try send.withUnsafeBufferPointer { s in try out.withUnsafeMutableBufferPointer { o in
            try c.reduceScatter(s.baseAddress!, counts: counts, into: o.baseAddress!)
        } }
        let offset = counts[..<c.rank].reduce(0, +), p = Float(c.size)
        let expected = (0..<counts[c.rank]).map { p * (p - 1) / 2 + p * Float(offset + $0) }
        return out == expected ? nil : "got \(out), expected \(expected)"
    }

    static func broadcast(_ c: Communicator) throws -> String? {
        for root in 0..<c.size {
            var x = (0..<3).map { v(c.rank, $0) }
            try x.withUnsafeMutableBufferPointer { try c.broadcast($0.baseAddress!, count: 3, root: root) }
            if x != (0..<3).map({ v(root, $0) }) { return "root \(root): got \(x)" }
        }
        try c.barrier()
        return nil
    }

    static func ring(_ c: Communicator) throws -> String? {
        guard c.size > 1 else { return nil }
        let next = (c.rank + 1) % c.size, prev = (c.rank + c.size - 1) % c.size
        let a = (0..<4).map { v(c.rank, $0) }, b = (0..<4).map { v(c.rank, 10 + $0) }
        var first = [Float](repeating: 0, count: 4), second = [Float](repeating: 0, count: 4)
        try first.withUnsafeMutableBufferPointer { f in try second.withUnsafeMutableBufferPointer { s in
            let pending = c.irecv(s.baseAddress!, count: 4, from: prev, tag: 7)
            let sent = try a.withUnsafeBufferPointer { try c.isend($0.baseAddress!, count: 4, to: next, tag: 3) }
            try b.withUnsafeBufferPointer { try c.send($0.baseAddress!, count: 4, to: next, tag: 7) }
            try c.recv(f.baseAddress!, count: 4, from: prev, tag: 3)
            try pending.wait()
            try sent.wait()
        } }
        let ok = first == (0..<4).map { v(prev, $0) } && second == (0..<4).map { v(prev, 10 + $0) }
        return ok ? nil : "got \(first) \(second)"
    }

    static func nonBlocking(_ c: Communicator) throws -> String? {
        let p = c.size, r = c.rank
        var mine: [Float] = [v(r, 0), v(r, 1)], gathered = [Float](repeating: -1, count: 2 * p)
        var send = (0..<p).map { v(r, $0) }, out = [Float](repeating: -1, count: p)
        try mine.withUnsafeMutableBufferPointer { m in try gathered.withUnsafeMutableBufferPointer { g in
            try send.withUnsafeMutableBufferPointer { s in try out.withUnsafeMutableBufferPointer { o in
                let a = try c.iallGather(m.baseAddress!, count: 2, into: g.baseAddress!, counts: nil)
                let b = try c.iallToAll(s.baseAddress!, sendCounts: Array(repeating: 1, count: p), into: o.baseAddress!,
                                        recvCounts: Array(repeating: 1, count: p))
                try a.wait()
                try b.wait()
            } }
        } }
        let ok = gathered == (0..<p).flatMap { [v($0, 0), v($0, 1)] } && out == (0..<p).map { v($0, r) }
        return ok ? nil : "gathered \(gathered.prefix(6))…, all-to-all \(out.prefix(6))…"
    }

    static func oneSided(_ c: Communicator) throws -> String? {
        let p = c.size, r = c.rank
        // Each rank's window has one slot per rank; rank r puts v(r, 0) into slot r of its right
        // neighbour and reads slot 0 of its left neighbour's initial contents.
        var buffer = (0..<p).map { v(r, 100 + $0) }
        var read: Float = -1
        let right = (r + 1) % p, left = (r + p - 1) % p
        try buffer.withUnsafeMutableBufferPointer { b in
            let w = try c.window(b.baseAddress!, count: p)
            var mine = v(r, 0)
            try w.get(&read, count: 1, from: left, offset: 0)
            try w.fence()
            try w.put(&mine, count: 1, to: right, offset: r)
            try w.fence()
            try w.free()
        }
        var expected = (0..<p).map { v(r, 100 + $0) }
        expected[left] = v(left, 0)
        return buffer == expected && read == v(left, 100) ? nil : "window \(buffer.prefix(6))…, read \(read)"
    }

    static func notifiedPut(_ c: Communicator) throws -> String? {
        let p = c.size, r = c.rank
        let right = (r + 1) % p, left = (r + p - 1) % p
        // Window sizes differ by rank; floats 0..<4 are written by the left neighbour, counter 0
        // says "data", counter 1 "your region is free again".
        let w = try c.notifiedWindow(count: 4 + r, slots: 2)
        let sentBefore = c.stats.byOperation["put"]?.bytesSent ?? 0
        var probe: Float = 0
        do {
            try w.put(&probe, count: 1, to: right, offset: 4 + right, notify: nil)
            return "a put past the end of rank \(right)'s window was accepted"
        } catch CommError.badArgument {}
        for round in 0..<3 {
            if round > 0 { try w.waitNotify(1, reaching: round, from: right, floats: 0) }
            let data = (0..<4).map { v(r, 10 * round + $0) }
            try data.withUnsafeBufferPointer { d in
                try w.put(d.baseAddress!, count: 2, to: right, offset: 0, notify: nil)
                try w.put(d.baseAddress! + 2, count: 2, to: right, offset: 2, notify: 0)
            }
            try w.waitNotify(0, reaching: round + 1, from: left, floats: 4)
            let got = Array(UnsafeBufferPointer(start: w.buffer, count: 4))
            if got != (0..<4).map({ v(left, 10 * round + $0) }) { return "round \(round): got \(got)" }
            try w.notify(left, slot: 1)
        }
        let sent = (c.stats.byOperation["put"]?.bytesSent ?? 0) - sentBefore
        guard sent == (p > 1 ? 3 * 4 * 4 : 0), w.count == 4 + r, w.notifications(0) == 3 else {
            return "put counted \(sent) bytes, window of \(w.count) floats, \(w.notifications(0)) notifications"
        }
        try w.free()
        return nil
    }

    static func subgroups(_ c: Communicator) throws -> String? {
        let members = (0..<c.size).filter { $0 % 2 == c.rank % 2 }
        let sub = try c.subgroup(members)
        var mine = Float(c.rank), out = [Float](repeating: -1, count: members.count)
        try out.withUnsafeMutableBufferPointer { try sub.allGather(&mine, count: 1, into: $0.baseAddress!, counts: nil) }
        return out == members.map(Float.init) && sub.rank == members.firstIndex(of: c.rank) ? nil : "got \(out)"
    }
}
