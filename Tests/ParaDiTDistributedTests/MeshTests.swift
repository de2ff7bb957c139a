import Foundation
import ParaDiTDistributed
import Testing

@Suite("Mesh, subgroups, traces and the link model")
struct MeshTests {
    @Test("rank order is ulysses innermost, then ring, pipefusion, cfg, data")
    func layout() throws {
        let mesh = try Mesh(degrees: [.ulysses: 2, .ring: 2, .cfg: 2], worldSize: 8)
        #expect((0..<8).map { mesh.coordinate(of: $0, along: .ulysses) } == [0, 1, 0, 1, 0, 1, 0, 1])
        #expect((0..<8).map { mesh.coordinate(of: $0, along: .ring) } == [0, 0, 1, 1, 0, 0, 1, 1])
        #expect((0..<8).map { mesh.coordinate(of: $0, along: .cfg) } == [0, 0, 0, 0, 1, 1, 1, 1])
        #expect(mesh.group(.ulysses, containing: 5) == [4, 5])
        #expect(mesh.group(.ring, containing: 5) == [5, 7])
        #expect(mesh.group(.cfg, containing: 5) == [1, 5])
        #expect(mesh.group(.pipefusion, containing: 5) == [5])
    }

    @Test("degrees that do not multiply to the world size are refused, naming them")
    func refused() {
        do {
            _ = try Mesh(degrees: [.ulysses: 2, .ring: 3], worldSize: 8)
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("ulysses=2,ring=3 multiply to 6") && "\(error)".contains("8 ranks"), "\(error)")
        }
        #expect(throws: CommError.self) { try Mesh(degrees: [.cfg: 0], worldSize: 1) }
    }

    @Test("topology: inner axes stay within a node when nodes hold consecutive ranks")
    func topology() throws {
        let mesh = try Mesh(degrees: [.ulysses: 4, .ring: 2], worldSize: 8, nodeOfRank: Mesh.nodes(worldSize: 8, nodes: 2))
        #expect(mesh.isIntraNode(.ulysses))
        #expect(!mesh.isIntraNode(.ring))
        #expect(throws: CommError.self) { try Mesh.nodes(worldSize: 6, nodes: 4) }
    }

    @Test("collectives on every axis group of an 8-rank mesh")
    func axisGroups() throws {
        let mesh = try Mesh(degrees: [.ulysses: 2, .ring: 2, .cfg: 2], worldSize: 8)
        let results = try LocalWorld.run(size: 8) { world -> [MeshAxis: [Float]] in
            var out: [MeshAxis: [Float]] = [:]
            for axis in [MeshAxis.ulysses, .ring, .cfg] {
                let members = mesh.group(axis, containing: world.rank)
                let comm = try world.subgroup(members)
                var mine: Float = Float(world.rank), gathered = [Float](repeating: -1, count: members.count)
                try gathered.withUnsafeMutableBufferPointer { try comm.allGather(&mine, count: 1, into: $0.baseAddress!, counts: nil) }
                out[axis] = gathered
            }
            return out
        }
        for (rank, out) in results.enumerated() {
            for axis in [MeshAxis.ulysses, .ring, .cfg] {
                #expect(out[axis] == mesh.group(axis, containing: rank).map(Float.init), "rank \(rank) \(axis)")
            }
        }
    }

    @Test("the trace is valid Chrome trace JSON with one track per rank and sizes on comm spans")
    func trace() throws {
        let tracer = Tracer()
        _ = try LocalWorld.run(size: 3, tracer: tracer) { comm -> Int in
            var x = [Float](repeating: 1, count: 10)
            _ = tracer.span("compute", category: "compute", rank: comm.rank) { usleep(1000) }
            try x.withUnsafeMutableBufferPointer { try comm.allReduce($0.baseAddress!, count: 10) }
            return 0
        }
        let json = try JSONSerialization.jsonObject(with: tracer.json()) as! [String: Any]
        let events = try #require(json["traceEvents"] as? [[String: Any]])
        let spans = events.filter { $0["ph"] as? String == "X" }
        #expect(Set(spans.compactMap { $0["tid"] as? Int }) == [0, 1, 2])
        let reduce = spans.filter { $0["name"] as? String == "allReduce" }
        #expect(reduce.count == 3 && reduce.allSatisfy { (($0["args"] as? [String: Any])?["bytes"] as? Int) == 80 })
        #expect(spans.allSatisfy { ($0["dur"] as? Double ?? -1) >= 0 && $0["ts"] is Double })
        #expect(events.filter { $0["ph"] as? String == "M" }.count == 3)
    }

    @Test("the link model delays traffic between emulated nodes by its bandwidth and latency")
    func linkModel() throws {
        // 4 ranks on 2 nodes; 0.08 Gbit/s between nodes: 1 MB takes 0.1 s.
        let links = LinkModel(nodeOfRank: try Mesh.nodes(worldSize: 4, nodes: 2), interGbps: 0.08, interLatency: 0.001)
        let times = try LocalWorld.run(size: 4, links: links) { world -> (Double, Double) in
            let count = 250_000  // 1 MB
            var send = [Float](repeating: 1, count: count), out = [Float](repeating: 0, count: 2 * count)
            // Within a node (ranks {0,1} and {2,3}): no emulated delay.
            let node = try world.subgroup(world.rank < 2 ? [0, 1] : [2, 3])
            var start = Date()
            try send.withUnsafeMutableBufferPointer { s in try out.withUnsafeMutableBufferPointer { o in
                try node.allGather(s.baseAddress!, count: count, into: o.baseAddress!, counts: nil)
            } }
            let intra = Date().timeIntervalSince(start)
            // Across nodes ({0,2} and {1,3}): 1 MB from the other node.
            let across = try world.subgroup(world.rank % 2 == 0 ? [0, 2] : [1, 3])
            start = Date()
            try send.withUnsafeMutableBufferPointer { s in try out.withUnsafeMutableBufferPointer { o in
                try across.allGather(s.baseAddress!, count: count, into: o.baseAddress!, counts: nil)
            } }
            return (intra, Date().timeIntervalSince(start))
        }
        for (intra, inter) in times {
            // Intra-node traffic gets no emulated delay (a bound below the 0.1 s an inter-node
            // megabyte costs, with room for a busy machine); inter-node traffic waits its 0.1 s.
            #expect(intra < 0.09, "intra-node \(intra) s")
            #expect(inter >= 0.1 && inter < 2, "inter-node \(inter) s")
        }
    }

    @Test("a receive posted early and waited for after its transfer time costs no extra wait")
    func linkModelOverlap() throws {
        // 2 ranks on 2 nodes at 0.08 Gbit/s: 1 MB takes 0.1 s on the link.
        let links = LinkModel(nodeOfRank: [0, 1], interGbps: 0.08, interLatency: 0.001)
        let waits = try LocalWorld.run(size: 2, links: links) { comm -> (overlapped: Double, blocking: Double) in
            let count = 250_000
            var buffer = [Float](repeating: Float(comm.rank), count: count)
            return try buffer.withUnsafeMutableBufferPointer { b -> (Double, Double) in
                let p = b.baseAddress!
                if comm.rank == 1 {
                    try comm.send(p, count: count, to: 0, tag: 1)
                    try comm.send(p, count: count, to: 0, tag: 2)
                    return (0, 0)
                }
                let request = comm.irecv(p, count: count, from: 1, tag: 1)
                Thread.sleep(forTimeInterval: 0.15)  // "compute" longer than the transfer
                var start = Date()
                try request.wait()
                let overlapped = Date().timeIntervalSince(start)
                start = Date()
                try comm.recv(p, count: count, from: 1, tag: 2)
                return (overlapped, Date().timeIntervalSince(start))
            }
        }
        #expect(waits[0].overlapped < 0.05, "waited \(waits[0].overlapped) s for a transfer already done")
        #expect(waits[0].blocking >= 0.1, "a receive posted late still takes the link's time (\(waits[0].blocking) s)")
    }
}

@Suite("Mesh groups over several axes")
struct MeshMultiAxisTests {
    @Test("ulysses × ring groups are the ranks sharing every other coordinate, in rank order")
    func sequenceGroups() throws {
        let mesh = try Mesh(degrees: [.cfg: 2, .ulysses: 2, .ring: 3], worldSize: 12)
        #expect(mesh.group([.ulysses, .ring], containing: 0) == Array(0..<6))
        #expect(mesh.group([.ulysses, .ring], containing: 9) == Array(6..<12))
        #expect(mesh.group([.ulysses], containing: 9) == mesh.group(.ulysses, containing: 9))
        #expect(mesh.group([.cfg, .ring], containing: 1) == [1, 3, 5, 7, 9, 11])
    }
}
