import ParaDiTParallel
import ParaDiTWeights
import Testing

/// pixart-512: batch 2 (CFG), 1024 tokens, width 1152, 16 heads, 28 layers.
let pixartShape = StepShape(batch: 2, tokens: 1024, hidden: 1152, heads: 16, layers: 28)
/// flux-small: batch 1, 1024 image + 512 text tokens, width 3072, 24 heads, 2 + 4 layers.
let fluxShape = StepShape(batch: 1, tokens: 1536, hidden: 3072, heads: 24, layers: 6)

@Suite("--parallel auto ranks placements by its cost model")
struct AutoPlannerTests {
    let pixart = pixartShape

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

    @Test("BF16 compute halves every placement's slow-link bytes and exposes no more time")
    func bf16() {
        let cluster = ClusterModel(worldSize: 8, nodes: 2, interGbps: 1, interLatency: 50e-6)
        let f32 = AutoPlanner.rank(fluxShape, cluster)
        let bf16 = StepShape(batch: 1, tokens: 1536, hidden: 3072, heads: 24, layers: 6, compute: .bf16)
        #expect(bf16.bytesPerValue == 2 && fluxShape.bytesPerValue == 4)
        for e in AutoPlanner.rank(bf16, cluster) {
            let wide = f32.first { $0.config == e.config }!
            #expect(2 * e.interNodeBytes == wide.interNodeBytes, "\(e.config)")
            #expect(e.exposedSeconds <= wide.exposedSeconds, "\(e.config)")
        }
        #expect(f32.contains { $0.interNodeBytes > 0 })
    }

    @Test("blocking all-to-alls across a slow link rank below exchanges that overlap compute")
    func slowLink() {
        let cluster = ClusterModel(worldSize: 4, nodes: 2, interGbps: 1, interLatency: 50e-6)
        let ranking = AutoPlanner.rank(StepShape(batch: 1, tokens: 4096, hidden: 3072, heads: 24, layers: 57), cluster)
        func cost(_ c: ParallelConfig) -> Double { ranking.first { $0.config == c }!.exposedSeconds }
        // Ulysses over all 4 ranks sends across hosts and waits; torus and ring hide most of it.
        #expect(cost(.init(ulysses: 4)) > cost(.init(ulysses: 2, torus: 2)))
        #expect(cost(.init(ulysses: 4)) > cost(.init(ulysses: 2, ring: 2)))
        // On 2 hosts Torus sends Ring's bytes but its first round hides behind a quarter of the
        // attention where Ring's one round hides behind half: USP with Ring across is cheaper.
        #expect(cost(.init(ulysses: 2, ring: 2)) < cost(.init(ulysses: 2, torus: 2)))
        // On 4 hosts of one rank Torus sends half of Ring's bytes and, unlike Ulysses, overlaps them.
        let fourHosts = AutoPlanner.rank(fluxShape, ClusterModel(worldSize: 4, nodes: 4, interGbps: 1, interLatency: 50e-6))
        func cost4(_ c: ParallelConfig) -> AutoPlanner.Estimate { fourHosts.first { $0.config == c }! }
        #expect(cost4(.init(torus: 4)).interNodeBytes * 2 == cost4(.init(ring: 4)).interNodeBytes)
        #expect(cost4(.init(torus: 4)).exposedSeconds < cost4(.init(ring: 4)).exposedSeconds)
        #expect(cost4(.init(torus: 4)).exposedSeconds < cost4(.init(ulysses: 4)).exposedSeconds)
        #expect(fourHosts[0].config == .init(torus: 4))
        // Inside one host nothing is slow: no inter-node bytes at all.
        let oneHost = AutoPlanner.rank(StepShape(batch: 1, tokens: 4096, hidden: 3072, heads: 24, layers: 57),
                                       ClusterModel(worldSize: 4, nodes: 1, interGbps: 1, interLatency: 50e-6))
        #expect(oneHost.allSatisfy { $0.interNodeBytes == 0 })
    }

    /// docs/PERFORMANCE.md's emulated tables (2 hosts × 2 ranks, 50 µs): median step seconds of
    /// the exact placements the planner chooses from, per preset and link speed in Gbit/s.
    static let measured: [(StepShape, Double, [(ParallelConfig, Double)])] = [
        (pixartShape, 10, [(.init(ulysses: 2, ring: 2), 18.074), (.init(ulysses: 4), 18.663), (.init(ring: 4), 19.057),
                           (.init(ulysses: 2, torus: 2), 17.729), (.init(cfg: 2, ring: 2), 16.340)]),
        (pixartShape, 1, [(.init(ulysses: 2, ring: 2), 19.969), (.init(ulysses: 4), 20.963), (.init(ring: 4), 19.711),
                          (.init(ulysses: 2, torus: 2), 19.841), (.init(cfg: 2, ring: 2), 19.003)]),
        (fluxShape, 10, [(.init(ulysses: 2, ring: 2), 18.15), (.init(ulysses: 4), 18.68), (.init(ring: 4), 16.84),
                         (.init(ulysses: 2, torus: 2), 16.62), (.init(torus: 4), 17.09)]),
        (fluxShape, 1, [(.init(ulysses: 2, ring: 2), 16.71), (.init(ulysses: 4), 17.95), (.init(ring: 4), 17.21),
                        (.init(ulysses: 2, torus: 2), 16.62), (.init(torus: 4), 17.23)]),
        (fluxShape, 0.1, [(.init(ulysses: 2, ring: 2), 21.66), (.init(ulysses: 4), 21.84), (.init(ring: 4), 26.20),
                          (.init(ulysses: 2, torus: 2), 23.12), (.init(torus: 4), 22.54)]),
    ]

    /// Repeated rounds of one configuration spread by ±5 % on this shared machine and their medians
    /// by a few per cent, so "fastest" is resolved to 2 %: where one placement is ahead by more
    /// (pixart at both links, Ring-4's slow step at 0.1 Gbit/s), the pick must be that one.
    @Test("on every measured link the cost model's pick is the fastest configuration measured, to 2 %",
          arguments: 0..<5)
    func matchesMeasurement(index: Int) {
        let (shape, gbps, rows) = Self.measured[index]
        let ranking = AutoPlanner.rank(shape, ClusterModel(worldSize: 4, nodes: 2, interGbps: gbps, interLatency: 50e-6))
        let fastest = rows.map(\.1).min()!
        let picked = rows.first { $0.0 == ranking[0].config }
        #expect(picked != nil, "the planner picked \(ranking[0].config), which was not measured")
        #expect(picked.map { $0.1 <= fastest * 1.02 } == true, "planner \(ranking[0].config): \(picked?.1 ?? 0) s, fastest \(fastest) s")
        // Every measured configuration is among the candidates the planner ranked.
        #expect(rows.allSatisfy { m in ranking.contains { $0.config == m.0 } })
    }

    /// The slow-link megabytes per rank and step that the transport counted in those runs (rank 0,
    /// attention exchanges plus ~0.1–0.2 MB of output gathers), 2 hosts × 2 ranks.
    static let measuredInterNodeMB: [(StepShape, ParallelConfig, Double)] = [
        (pixartShape, .init(ulysses: 2, ring: 2), 132.3), (pixartShape, .init(ulysses: 4), 132.3),
        (pixartShape, .init(ring: 4), 396.5), (pixartShape, .init(ulysses: 2, torus: 2), 132.3),
        (pixartShape, .init(cfg: 2, ring: 2), 0.13),
        (fluxShape, .init(ulysses: 2, ring: 2), 56.8), (fluxShape, .init(ulysses: 4), 56.8),
        (fluxShape, .init(ring: 4), 170.0), (fluxShape, .init(ulysses: 2, torus: 2), 56.8),
        (fluxShape, .init(torus: 4), 56.8),
    ]

    @Test("its slow-link bytes are what the transport counted, for axes wholly or partly across hosts")
    func interNodeBytesMatchTransport() {
        let cluster = ClusterModel(worldSize: 4, nodes: 2, interGbps: 10, interLatency: 50e-6)
        for (shape, config, mb) in Self.measuredInterNodeMB {
            let modelled = AutoPlanner.estimate(config, shape, cluster).interNodeBytes / 1e6
            #expect(abs(modelled - mb) < 0.3, "\(config): modelled \(modelled) MB, counted \(mb) MB")
        }
    }
}
