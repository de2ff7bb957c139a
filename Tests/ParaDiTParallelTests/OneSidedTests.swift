import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import Testing

extension ParallelConfig {
    /// This configuration with ring or torus by one-sided puts.
    var oneSidedCopy: ParallelConfig {
        var c = self
        c.oneSided = true
        return c
    }
}

@Suite("One-sided ring and torus equal serial")
struct OneSidedParityTests {
    static let classes = ParityTests.classes
    /// Ring, USP and Torus on every class (odd text: replicated), then split text and 3 heads.
    static let cases: [ParityCase] = classes.flatMap { c in
        [ParallelConfig(ring: 2), .init(ring: 4), .init(ulysses: 2, ring: 2), .init(cfg: 2, ring: 2),
         .init(torus: 2), .init(ulysses: 2, torus: 2), .init(torus: 4)].map { ParityCase(className: c, config: $0.oneSidedCopy) }
    }
        + ["SD3Transformer2DModel", "FluxTransformer2DModel"].flatMap { c in
            [ParallelConfig(ring: 4), .init(ulysses: 2, torus: 2)].map { ParityCase(className: c, text: 8, config: $0.oneSidedCopy) }
        }
        + [ParityCase(className: "FluxTransformer2DModel", heads: 3, config: ParallelConfig(torus: 2).oneSidedCopy),
           ParityCase(className: "DiTTransformer2DModel", grid: (5, 5), config: ParallelConfig(ring: 3).oneSidedCopy)]

    @Test("forward output equals serial (relative L2 ≤ 1e-5) on every rank", arguments: cases)
    func parity(_ c: ParityCase) throws { try expectParity(c) }

    /// Several forward passes on one context: the windows and their counts carry over between
    /// passes (and layers), with no collective point in between, and stay exact. Windows (one per
    /// call shape: SD3's dual layers add an image-only one for torus) come with the first pass only.
    @Test("repeated forward passes reuse one window each and stay exact",
          arguments: [ParallelConfig(ring: 3).oneSidedCopy, ParallelConfig(ulysses: 2, torus: 2).oneSidedCopy])
    func reuse(_ config: ParallelConfig) throws {
        let model = try TestModels.model("SD3Transformer2DModel", heads: 4)
        let inputs = try TestModels.inputs(model, batch: 2, grid: (3, 5), text: 7)
        let serial = try model.forward(any: inputs)
        let box = UncheckedBox((model, inputs))
        let results = try LocalWorld.run(size: config.worldSize, timeout: 60) { comm in
            let context = try ParallelContext(config: config, world: comm)
            let transformer = ParallelTransformer(model: box.value.0, context: context)
            var errors: [Double] = [], windows: [Int] = []
            for _ in 0..<3 {
                errors.append(relativeL2(try transformer.forward(box.value.1), serial))
                windows.append(context.ringGroup?.stats.byOperation["notifiedWindow"]?.calls ?? 0)
            }
            try context.releaseWindows()
            return UncheckedBox((errors, windows))
        }
        for r in results {
            #expect(r.value.0.allSatisfy { $0 <= 1e-5 }, "\(r.value.0)")
            #expect(r.value.1[0] >= 1 && r.value.1[0] <= 2 && Set(r.value.1).count == 1, "windows allocated after each pass: \(r.value.1)")
        }
    }

    @Test("one-sided bytes equal the two-sided formulas", arguments: ["DiTTransformer2DModel", "FluxTransformer2DModel"],
          [ParallelConfig(ring: 2), .init(ring: 4), .init(ulysses: 2, ring: 2), .init(torus: 2), .init(ulysses: 2, torus: 2), .init(torus: 4)])
    func volume(className: String, config: ParallelConfig) throws {
        let model = try TestModels.model(className, heads: 4)
        let inputs = try TestModels.inputs(model, batch: 2, grid: (4, 4), text: 8)
        let (_, _, contexts) = try TestModels.run(model, inputs, config.oneSidedCopy)
        let expected = CommVolume(config: config, problem: try model.problem(any: inputs))
        for c in contexts {
            let stats = c.ringGroup!.stats
            #expect(stats.totalSent == expected.ringBytes + expected.torusBytes, "rank \(c.world.rank)")
            #expect(stats.byOperation["send"] == nil, "rank \(c.world.rank) used send: \(stats.byOperation)")
            #expect(stats.byOperation["put"]!.bytesSent == expected.ringBytes + expected.torusBytes)
            #expect(stats.byOperation["waitNotify"]!.bytesReceived == expected.ringBytes + expected.torusBytes)
        }
    }

    @Test("traces: every one-sided shard is in flight while the previous step's attention runs; waits are timed")
    func trace() throws {
        let tracer = Tracer()
        let model = try TestModels.model("DiTTransformer2DModel", heads: 4)
        let inputs = try TestModels.inputs(model, batch: 1, grid: (4, 4), text: 0)
        let (_, _, contexts) = try TestModels.run(model, inputs, ParallelConfig(ring: 4).oneSidedCopy, tracer: tracer)
        let spans = tracer.recorded
        for rank in 0..<4 {
            let transfers = spans.filter { $0.rank == Tracer.transferTrack(rank) }
            let compute = spans.filter { $0.rank == rank && $0.name.hasPrefix("ring attention step") }
            let waits = spans.filter { $0.rank == rank && $0.name.hasPrefix("wait ") }
            #expect(transfers.count == 6 && compute.count == 8)
            for t in transfers {
                #expect(compute.contains { $0.start >= t.start && $0.start + $0.duration <= t.start + t.duration }, "rank \(rank): \(t)")
            }
            let traced = waits.reduce(0) { $0 + $1.duration }, counted = contexts[rank].waitSeconds
            #expect(abs(traced - counted) <= 0.01 + 0.1 * counted, "rank \(rank): traced \(traced) s, counted \(counted) s")
        }
    }

    @Test("one-sided without ring or torus is refused")
    func refused() throws {
        var config = ParallelConfig(ulysses: 2)
        config.oneSided = true
        #expect(throws: ParallelError.self) { try config.validate(.init(batch: 2, heads: 4, headDim: 8, grid: .init(gridHeight: 4, gridWidth: 4), attentionLayers: 2)) }
    }
}
