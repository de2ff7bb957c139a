import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import Testing

@Suite("Step caches (FBCache, TeaCache): exact at threshold 0, the same under every parallel method")
struct StepCacheTests {
    static let exact: [ParallelConfig] = [.init(), .init(cfg: 2), .init(ulysses: 2), .init(ring: 2), .init(cfg: 2, ulysses: 2)]

    static let cases: [(String, CacheSpec.Method)] = ["dit", "pixart", "sd3", "flux"].flatMap { [($0, .fbcache), ($0, .teacache)] }

    /// The exact methods a fixture takes (Flux-dev embeds guidance: no CFG batch to split).
    static func methods(_ name: String) -> [ParallelConfig] { name == "flux" ? [.init(), .init(ulysses: 2), .init(ring: 2)] : exact }

    /// The stale methods a fixture takes, with a stage boundary in every model (Flux's between its
    /// double- and single-stream blocks).
    static func stale(_ name: String) -> [ParallelConfig] {
        [.init(pipefusion: 2), .init(distrifusion: 2)] + (name == "flux" ? [] : [.init(cfg: 2, pipefusion: 2)])
    }

    /// Final latents and skipped steps of a fixture's generation split as `config` (nil: no cache).
    func generate(_ name: String, _ config: ParallelConfig, _ method: CacheSpec.Method = .fbcache, threshold: Double?,
                  warmup: Int = 0) throws -> (latents: Tensor, skipped: Double) {
        let (pipeline, request, conditioning) = try fixtureRequest(name)
        let box = UncheckedBox((pipeline, request, conditioning))
        let ranks = try LocalWorld.run(size: config.worldSize, timeout: 60) { comm in
            let (pipeline, request, conditioning) = box.value
            let cache = threshold.map { StepCache(CacheSpec("\(method.rawValue):\($0)")!, steps: request.steps) }
            let latents = try pipeline.denoise(request, conditioning: conditioning, context: try ParallelContext(config: config, world: comm),
                                               warmupSteps: warmup, cache: cache)
            return UncheckedBox((latents, cache?.skipped ?? 0))
        }
        #expect(ranks.allSatisfy { $0.value.1 == ranks[0].value.1 }, "\(name) \(config): ranks skipped different steps")
        return ranks[0].value
    }

    @Test("threshold 0 skips nothing and equals the uncached run bit for bit", arguments: cases)
    func zero(name: String, method: CacheSpec.Method) throws {
        // No raw-cblas benchmark may thread OpenBLAS meanwhile: its GEMM would sum in another order.
        BLAS.multiThreadLock.lock()
        defer { BLAS.multiThreadLock.unlock() }
        for (config, warmup) in Self.methods(name).map({ ($0, 0) }) + Self.stale(name).map({ ($0, 1) }) {
            let plain = try generate(name, config, threshold: nil, warmup: warmup)
            let cached = try generate(name, config, method, threshold: 0, warmup: warmup)
            #expect(cached.skipped == 0)
            #expect(plain.latents.scalars == cached.latents.scalars, "\(name) \(config)")
        }
    }

    /// A threshold no change reaches: every step after the first reuses the cache, on every rank
    /// alike. PipeFusion with one patch and DistriFusion warming up throughout have fresh K/V, so
    /// they too must equal serial; their cache then runs through the per-stage residuals and the
    /// decision passed from stage to stage.
    @Test("with the cache every exact method, and the stale ones while exact, equal the serial run with the cache",
          arguments: cases)
    func parity(name: String, method: CacheSpec.Method) throws {
        let serial = try generate(name, .init(), method, threshold: 1e9)
        #expect(serial.skipped > 0)
        #expect(relativeL2(serial.latents, try generate(name, .init(), threshold: nil).latents) > 1e-4, "skipping changes the result")
        let steps = try fixtureRequest(name).1.steps
        let stale = [(ParallelConfig(pipefusion: 2, patches: 1), 1), (ParallelConfig(distrifusion: 2), steps)]
        for (config, warmup) in Self.methods(name).dropFirst().map({ ($0, 0) }) + stale {
            let parallel = try generate(name, config, method, threshold: 1e9, warmup: warmup)
            #expect(parallel.skipped == serial.skipped, "\(name) \(config)")
            #expect(relativeL2(parallel.latents, serial.latents) <= 1e-5, "\(name) \(config)")
        }
    }

    /// PipeFusion's patches each keep their own entry: the first patched step computes every patch,
    /// later ones skip (TeaCache computes the last step), and ranks agree on every decision.
    @Test("PipeFusion caches per patch", arguments: cases)
    func patches(name: String, method: CacheSpec.Method) throws {
        let steps = Double(try fixtureRequest(name).1.steps)
        // SD3's and Flux's fixtures have two token rows: two patches at most.
        let configs = [ParallelConfig(pipefusion: 2)] + (["sd3", "flux"].contains(name) ? [] : [ParallelConfig(pipefusion: 2, patches: 4)])
        for config in configs {
            let cached = try generate(name, config, method, threshold: 1e9, warmup: 1)
            #expect(cached.skipped == (method == .fbcache ? steps - 2 : steps - 3), "\(name) \(config)")
            #expect(cached.latents.scalars.allSatisfy { $0.isFinite })
            let plain = try generate(name, config, threshold: nil, warmup: 1)
            #expect(relativeL2(cached.latents, plain.latents) > 1e-4, "\(name) \(config): skipping changes the result")
        }
    }

    @Test("spec parsing")
    func parsing() {
        #expect(CacheSpec("teacache") == CacheSpec("teacache:0.1") && CacheSpec("fbcache:-1") == nil && CacheSpec("x:1") == nil)
    }
}
