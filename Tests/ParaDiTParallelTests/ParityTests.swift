import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import Testing

/// One cell of the parity matrix.
struct ParityCase: CustomStringConvertible, Sendable {
    var className: String
    var heads = 4
    var grid = (3, 5)
    var text = 7
    var config: ParallelConfig
    var description: String { "\(className.replacingOccurrences(of: "Transformer2DModel", with: "")) h\(heads) \(grid.0)×\(grid.1) t\(text) \(config)" }
}

@Suite("Exact parallelism equals serial")
struct ParityTests {
    static let classes = ["DiTTransformer2DModel", "PixArtTransformer2DModel", "SD3Transformer2DModel", "FluxTransformer2DModel"]
    static let configs: [ParallelConfig] = [
        .init(cfg: 2), .init(ulysses: 2), .init(ring: 2), .init(ulysses: 2, ring: 2), .init(ulysses: 4), .init(ring: 4),
        .init(cfg: 2, ulysses: 2), .init(cfg: 2, ring: 2), .init(cfg: 2, ulysses: 2, ring: 2),
    ]
    /// Every class × every method on 15 image tokens (odd: shards of 8 and 7, or 4, 4, 4, 3) and 7
    /// text tokens (odd: replicated); then text that divides (split with the image), 3 heads over
    /// ulysses 2, and DiT's square grid of 25 tokens.
    static let cases: [ParityCase] = classes.flatMap { c in configs.map { ParityCase(className: c, config: $0) } }
        + ["SD3Transformer2DModel", "FluxTransformer2DModel"].flatMap { c in
            [ParallelConfig(ulysses: 2), .init(ring: 2), .init(ulysses: 2, ring: 2), .init(ring: 4)].map { ParityCase(className: c, text: 8, config: $0) }
        }
        + classes.flatMap { c in [ParallelConfig(ulysses: 2), .init(ulysses: 2, ring: 2)].map { ParityCase(className: c, heads: 3, config: $0) } }
        + [ParityCase(className: "DiTTransformer2DModel", grid: (5, 5), config: .init(ulysses: 2, ring: 2))]
        // Torus across 2 or 4 "nodes", Ulysses inside; odd text (replicated) and split text.
        + classes.flatMap { c in [ParallelConfig(torus: 2), .init(ulysses: 2, torus: 2), .init(torus: 4), .init(cfg: 2, torus: 2)]
            .map { ParityCase(className: c, config: $0) } }
        + ["SD3Transformer2DModel", "FluxTransformer2DModel"].map { ParityCase(className: $0, text: 8, config: .init(ulysses: 2, torus: 2)) }
        + [ParityCase(className: "FluxTransformer2DModel", heads: 3, config: .init(torus: 2))]
        // DiT's first steps are synchronous (warm-up): every K/V is fresh, so it is exact too.
        + classes.flatMap { c in [ParallelConfig(distrifusion: 2), .init(distrifusion: 4), .init(cfg: 2, distrifusion: 2)]
            .map { ParityCase(className: c, config: $0) } }

    @Test("forward output equals serial (relative L2 ≤ 1e-5) on every rank", arguments: cases)
    func parity(_ c: ParityCase) throws { try expectParity(c) }
}
