import ArgumentParser
import ParaDiTModels
import ParaDiTParallel

extension CacheSpec: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

extension CacheSpec {
    /// Refuses, before any rank starts, a cache the run cannot use.
    func check(_ model: any DiffusionTransformer, _ problem: TransformerProblem, _ config: ParallelConfig) throws {
        guard config.pipefusion == 1 && config.distrifusion == 1 else {
            throw ValidationError("--cache runs with the exact methods (cfg, ulysses, ring, torus), not with PipeFusion or DistriFusion")
        }
        guard StepCache.supports(self, model, batch: problem.batch, imageTokens: problem.imageTokens,
                                       textTokens: problem.jointTextTokens) else {
            throw ValidationError("--cache: \(model.className) changes its token streams between blocks (joins text and image); "
                                  + "it cannot be cached yet")
        }
    }
}
