import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import Testing

@Suite("Bytes sent equal the formulas")
struct CommVolumeTests {
    static let configs: [ParallelConfig] = [.init(ulysses: 2), .init(ulysses: 4), .init(ring: 2), .init(ring: 4),
                                            .init(ulysses: 2, ring: 2), .init(cfg: 2, ulysses: 2, ring: 2), .init(distrifusion: 2),
                                            .init(cfg: 2, distrifusion: 4), .init(torus: 2), .init(ulysses: 2, torus: 2), .init(torus: 4)]

    /// DiT: 16 image tokens, 4 heads; Flux: 16 image + 8 text tokens (split with the image).
    @Test("measured ulysses and ring bytes per forward equal CommVolume", arguments: ["DiTTransformer2DModel", "FluxTransformer2DModel"], configs)
    func volume(className: String, config: ParallelConfig) throws {
        let model = try TestModels.model(className, heads: 4)
        let inputs = try TestModels.inputs(model, batch: 2, grid: (4, 4), text: 8)
        let (_, _, contexts) = try TestModels.run(model, inputs, config)
        let p = try model.problem(any: inputs)
        // DistriFusion keeps the text replicated: only image K/V travel.
        let tokens = 16 + (config.distrifusion > 1 ? 0 : p.jointTextTokens)
        let expected = CommVolume(config: config, batch: 2, tokens: tokens, hidden: p.hidden, layers: p.attentionLayers)
        #expect(CommVolume(config: config, problem: p) == expected)
        for c in contexts {
            #expect(c.ulyssesGroup?.stats.totalSent ?? 0 == expected.ulyssesBytes, "rank \(c.world.rank) ulysses")
            #expect(c.ringGroup?.stats.totalSent ?? 0 == expected.ringBytes + expected.torusBytes, "rank \(c.world.rank) ring or torus")
            #expect(c.patchGroup?.stats.totalSent ?? 0 == expected.distrifusionBytes, "rank \(c.world.rank) distrifusion")
        }
        #expect(expected.ulyssesBytes + expected.ringBytes + expected.distrifusionBytes + expected.torusBytes > 0)
    }

    @Test("the formulas: Ulysses 4·(U−1)/U·p·hs/N, Ring 2·(R−1)/R·p·hs per layer")
    func formulas() {
        // p = 1024, hs = 1152, one layer, batch 1: floats, then ×4 bytes.
        #expect(CommVolume(config: .init(ulysses: 2), batch: 1, tokens: 1024, hidden: 1152, layers: 1).ulyssesBytes == 4 * 4 * 1024 * 1152 / 4)
        #expect(CommVolume(config: .init(ring: 2), batch: 1, tokens: 1024, hidden: 1152, layers: 1).ringBytes == 4 * 2 * 1024 * 1152 / 2)
        #expect(CommVolume(config: .init(ring: 4), batch: 1, tokens: 1024, hidden: 1152, layers: 1).ringBytes == 4 * 2 * 3 * 1024 * 1152 / 4)
        let cfg = CommVolume(config: .init(cfg: 2), batch: 2, tokens: 1024, hidden: 1152, layers: 1)
        #expect(cfg.ulyssesBytes == 0 && cfg.ringBytes == 0)
    }
}

@Suite("Configurations that cannot work are refused up front")
struct RefusalTests {
    func message(_ config: ParallelConfig, heads: Int = 4, batch: Int = 2, grid: (Int, Int) = (3, 5)) throws -> String {
        let model = try TestModels.model("FluxTransformer2DModel", heads: heads)
        let inputs = try TestModels.inputs(model, batch: batch, grid: grid, text: 7)
        do {
            _ = try TestModels.run(model, inputs, config)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test("ulysses above the head count names ulysses and the head count")
    func ulyssesHeads() throws {
        let m = try message(.init(ulysses: 4), heads: 3)
        #expect(m.contains("ulysses=4") && m.contains("3 attention heads"), "\(m)")
    }

    @Test("cfg on a batch of one names cfg")
    func cfgBatch() throws {
        let m = try message(.init(cfg: 2), batch: 1)
        #expect(m.contains("cfg=2") && m.contains("1 sample"), "\(m)")
    }

    @Test("more sequence ranks than tokens names ulysses and ring")
    func tooFewTokens() throws {
        let m = try message(.init(ulysses: 2, ring: 2), grid: (1, 3))
        #expect(m.contains("3 tokens") && m.contains("lower ulysses, ring or distrifusion"), "\(m)")
    }

    @Test("a world of the wrong size names both sizes")
    func worldSize() throws {
        do {
            _ = try ParallelContext(config: .init(ulysses: 2), world: LocalCommunicator.single())
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("needs 2 rank(s)") && "\(error)".contains("has 1"))
        }
    }
}
