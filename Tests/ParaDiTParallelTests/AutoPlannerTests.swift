import ParaDiTParallel
import Testing

@Suite("--parallel auto ranks placements by its cost model")
struct AutoPlannerTests {
    /// pixart-512: batch 2 (CFG), 1024 tokens, width 1152, 16 heads, 28 layers.
    let pixart = StepShape(batch: 2, tokens: 1024, hidden: 1152, heads: 16, layers: 28)

    @Test("the choice is the cheapest estimate, for a fast and a slow inter-node link", arguments: [10.0, 1.0])
    func cheapestFirst(gbps: Double) {
        let cluster = ClusterModel(worldSize: 4, nodes: 2, interGbps: gbps, interLatency: 50e-6)
        let ranking = AutoPlanner.rank(pixart, cluster)
        #expect(ranking.count >= 6)
        #expect(zip(ranking, ranking.dropFirst()).allSatisfy { $0.exposedSeconds <= $1.exposedSeconds })
        // Every candidate fits the world and the model.
        #expect(ranking.allSatisfy { $0.config.worldSize == 4 && $0.config.ulysses * $0.config.torus <= 16 })
        #expect(AutoPlanner.explain(ranking).contains("→ \(ranking[0].config.description)"))
    }

    @Test("blocking all-to-alls across a slow link rank below exchanges that overlap compute")
    func slowLink() {
        let cluster = ClusterModel(worldSize: 4, nodes: 2, interGbps: 1, interLatency: 50e-6)
        let ranking = AutoPlanner.rank(StepShape(batch: 1, tokens: 4096, hidden: 3072, heads: 24, layers: 57), cluster)
        func cost(_ c: ParallelConfig) -> Double { ranking.first { $0.config == c }!.exposedSeconds }
        // Ulysses over all 4 ranks sends across hosts and waits; torus and ring hide most of it.
        #expect(cost(.init(ulysses: 4)) > cost(.init(ulysses: 2, torus: 2)))
        #expect(cost(.init(ulysses: 4)) > cost(.init(ulysses: 2, ring: 2)))
        // Inside one host nothing is slow: no inter-node bytes at all.
        let oneHost = AutoPlanner.rank(StepShape(batch: 1, tokens: 4096, hidden: 3072, heads: 24, layers: 57),
                                       ClusterModel(worldSize: 4, nodes: 1, interGbps: 1, interLatency: 50e-6))
        #expect(oneHost.allSatisfy { $0.interNodeBytes == 0 })
    }

    /// docs/PERFORMANCE.md's emulated table for pixart-512 (2 hosts × 2 ranks, 50 µs): measured step
    /// seconds of the exact placements, per link speed.
    static let measuredPixArt: [Double: [(ParallelConfig, Double)]] = [
        10: [(.init(ulysses: 2, ring: 2), 18.074), (.init(ulysses: 4), 18.663), (.init(ring: 4), 19.057),
             (.init(ulysses: 2, torus: 2), 17.729), (.init(cfg: 2, ring: 2), 16.340)],
        1: [(.init(ulysses: 2, ring: 2), 19.969), (.init(ulysses: 4), 20.963), (.init(ring: 4), 19.711),
            (.init(ulysses: 2, torus: 2), 19.841), (.init(cfg: 2, ring: 2), 19.003)],
    ]

    @Test("on both measured links the cost model's pick is the fastest configuration measured", arguments: [10.0, 1.0])
    func matchesMeasurement(gbps: Double) {
        let ranking = AutoPlanner.rank(pixart, ClusterModel(worldSize: 4, nodes: 2, interGbps: gbps, interLatency: 50e-6))
        let measured = Self.measuredPixArt[gbps]!
        let fastest = measured.min { $0.1 < $1.1 }!.0
        #expect(ranking[0].config == fastest, "planner \(ranking[0].config), measured \(fastest)")
        // Every measured configuration is among the candidates the planner ranked.
        #expect(measured.allSatisfy { m in ranking.contains { $0.config == m.0 } })
    }
}
