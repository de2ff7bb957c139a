import ParaDiTDistributed
import ParaDiTParallel
import Testing

@Suite("Ring traces show transfers under compute")
struct RingTraceTests {
    @Test("every K/V shard is in flight while the previous step's attention runs")
    func overlap() throws {
        let tracer = Tracer()
        let model = try TestModels.model("DiTTransformer2DModel", heads: 4)
        let inputs = try TestModels.inputs(model, batch: 1, grid: (4, 4), text: 0)
        _ = try TestModels.run(model, inputs, .init(ring: 4), tracer: tracer)
        let spans = tracer.recorded
        for rank in 0..<4 {
            let transfers = spans.filter { $0.rank == Tracer.transferTrack(rank) }
            let compute = spans.filter { $0.rank == rank && $0.name.hasPrefix("ring attention step") }
            // 2 layers × 3 received shards; each transfer spans one step's attention.
            #expect(transfers.count == 6 && compute.count == 8)
            for t in transfers {
                #expect(compute.contains { $0.start >= t.start && $0.start + $0.duration <= t.start + t.duration }, "rank \(rank): \(t)")
            }
        }
    }
}
