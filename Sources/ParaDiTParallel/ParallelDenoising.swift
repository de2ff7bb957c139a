import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTTensor

extension TextToImagePipeline {
    /// The denoising loop on this rank of a parallel run: PipeFusion's patch pipeline when the
    /// configuration has stages, otherwise one `ParallelTransformer` pass per step. Every rank
    /// returns the final latents.
    public func denoise(_ request: GenerationRequest, conditioning: Conditioning?, context: ParallelContext, warmupSteps: Int,
                        cache: StepCache? = nil, onStep: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> Tensor {
        let config = context.config
        guard config.pipefusion > 1 else {
            let parallel = ParallelTransformer(model: transformer, context: context, warmupSteps: warmupSteps, cache: cache)
            let latents = try denoise(request, conditioning: conditioning, denoiser: { try parallel.forward($0) }, onStep: onStep)
            try parallel.finish()
            return latents
        }
        let sampler = try sampler(request, conditioning: conditioning, patches: config.patchCount)
        try PipeFusion(model: transformer, context: context, warmupSteps: warmupSteps, cache: cache).run(sampler, onStep: onStep)
        return sampler.finalLatents
    }
}

extension ParallelConfig {
    /// Synchronous steps a stale method runs first when none are asked for: DistriFusion's 4,
    /// PipeFusion's 1.
    public var defaultWarmupSteps: Int { pipefusion > 1 ? 1 : 4 }
}
