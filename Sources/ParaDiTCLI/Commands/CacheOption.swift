import ArgumentParser
import ParaDiTModels
import ParaDiTParallel

extension CacheSpec: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

extension CacheSpec {
    /// Refuses, before any rank starts, a cache the run cannot use.
    func check(_ config: ParallelConfig) throws {
        guard config.pipefusion == 1 && config.distrifusion == 1 else {
            throw ValidationError("--cache runs with the exact methods (cfg, ulysses, ring, torus), not with PipeFusion or DistriFusion")
        }
    }
}
