import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import Testing

@Suite("Step caches (FBCache, TeaCache): exact at threshold 0, the same under every exact method")
struct StepCacheTests {
    static let exact: [ParallelConfig] = [.init(), .init(cfg: 2), .init(ulysses: 2), .init(ring: 2), .init(cfg: 2, ulysses: 2)]

    static let cases: [(String, CacheSpec.Method)] = ["dit", "pixart", "sd3", "flux"].flatMap { [($0, .fbcache), ($0, .teacache)] }

    /// The exact methods a fixture takes (Flux-dev embeds guidance: no CFG batch to split).
    static func methods(_ name: String) -> [ParallelConfig] { name == "flux" ? [.init(), .init(ulysses: 2), .init(ring: 2)] : exact }

    /// Final latents and skipped steps of a fixture's generation split as `config` (nil: no cache).
    func generate(_ name: String, _ config: ParallelConfig, _ method: CacheSpec.Method = .fbcache,
                  threshold: Double?) throws -> (latents: Tensor, skipped: Int) {
        let (pipeline, request, conditioning) = try fixtureRequest(name)
        let box = UncheckedBox((pipeline, request, conditioning))
        let ranks = try LocalWorld.run(size: config.worldSize, timeout: 60) { comm in
            let (pipeline, request, conditioning) = box.value
            let cache = threshold.map { StepCache(CacheSpec("\(method.rawValue):\($0)")!, steps: request.steps) }
            let latents = try pipeline.denoise(request, conditioning: conditioning, context: try ParallelContext(config: config, world: comm),
                                               warmupSteps: 0, cache: cache)
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
        for config in Self.methods(name) {
            let (plain, cached) = (try generate(name, config, threshold: nil), try generate(name, config, method, threshold: 0))
            #expect(cached.skipped == 0)
            #expect(plain.latents.scalars == cached.latents.scalars, "\(name) \(config)")
        }
    }

    /// A threshold no change reaches: every step after the first reuses the cache, on every rank alike.
    @Test("with the cache every exact method equals the serial run with the cache", arguments: cases)
    func parity(name: String, method: CacheSpec.Method) throws {
        let serial = try generate(name, .init(), method, threshold: 1e9)
        #expect(serial.skipped > 0)
        #expect(relativeL2(serial.latents, try generate(name, .init(), threshold: nil).latents) > 1e-4, "skipping changes the result")
        for config in Self.methods(name).dropFirst() {
            let parallel = try generate(name, config, method, threshold: 1e9)
            #expect(parallel.skipped == serial.skipped, "\(name) \(config)")
            #expect(relativeL2(parallel.latents, serial.latents) <= 1e-5, "\(name) \(config)")
        }
    }

    @Test("refused: PipeFusion and DistriFusion; spec parsing")
    func refused() throws {
        let (pipeline, request, conditioning) = try fixtureRequest("dit")
        let box = UncheckedBox((pipeline, request, conditioning))
        for config in [ParallelConfig(pipefusion: 2), ParallelConfig(distrifusion: 2)] {
            #expect(throws: ParallelError.self) {
                _ = try LocalWorld.run(size: 2, timeout: 30) { comm in
                    let (pipeline, request, conditioning) = box.value
                    return UncheckedBox(try pipeline.denoise(request, conditioning: conditioning,
                                                             context: try ParallelContext(config: config, world: comm), warmupSteps: 1,
                                                             cache: StepCache(CacheSpec("fbcache")!, steps: 4)))
                }
            }
        }
        #expect(CacheSpec("teacache") == CacheSpec("teacache:0.1") && CacheSpec("fbcache:-1") == nil && CacheSpec("x:1") == nil)
    }
}
