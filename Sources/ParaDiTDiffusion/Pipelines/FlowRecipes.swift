import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// StableDiffusion3Pipeline with given embeddings: [negative; positive] under guidance, flow
/// matching with the resolution-dependent shift when the scheduler config asks for it.
struct SD3Recipe: DenoisingRecipe {
    let model: SD3Transformer2DModel
    let embeds: Tensor, pooled: Tensor
    let guidance: Double
    let noiseShape: [Int]

    init(model: SD3Transformer2DModel, vae: AutoencoderKL, request r: GenerationRequest, conditioning c: Conditioning) throws {
        let f = vae.config.upscaleFactor
        let (h, w) = try latentSize(r, native: model.config.sampleSize * f, vaeScale: f, multiple: f * model.config.patchSize)
        let guided = r.guidanceScale > 1
        embeds = guided ? catBatch([c.negativePromptEmbeds!, c.promptEmbeds]) : c.promptEmbeds
        pooled = guided ? catBatch([c.negativePooledPromptEmbeds!, c.pooledPromptEmbeds!]) : c.pooledPromptEmbeds!
        (self.model, guidance) = (model, r.guidanceScale)
        noiseShape = [c.batch, model.config.inChannels, h, w]
    }

    var tokenGrid: (rows: Int, columns: Int) { (noiseShape[2] / model.config.patchSize, noiseShape[3] / model.config.patchSize) }

    func initialLatents(_ noise: Tensor, initNoiseSigma: Float) -> Tensor { noise }

    func setTimesteps(_ scheduler: inout any Scheduler, steps: Int) throws {
        guard let flow = scheduler as? FlowMatchEulerDiscreteScheduler, flow.config.useDynamicShifting else {
            return try scheduler.setTimesteps(steps, mu: nil)
        }
        let p = model.config.patchSize
        try scheduler.setTimesteps(steps, mu: flow.mu(imageSeqLen: (noiseShape[2] / p) * (noiseShape[3] / p)))
    }

    func inputs(_ latents: Tensor, timestep t: Float) -> ModelInputs {
        let x = guidance > 1 ? catBatch([latents, latents]) : latents
        return .sd3(SD3Inputs(hiddenStates: x, encoderHiddenStates: embeds, pooledProjections: pooled,
                              timestep: Array(repeating: t, count: x.size(0))))
    }

    func modelOutput(_ output: Tensor) -> Tensor {
        guard guidance > 1 else { return output }
        let b = output.size(0) / 2
        return classifierFreeGuidance(uncond: output.rows(0..<b), cond: output.rows(b..<(2 * b)), scale: guidance)
    }
}

/// FluxPipeline with given embeddings: packed 2×2 latents, sigmas linspace(1, 1/N, N) shifted by
/// mu from the packed sequence length, guidance through the embedding (dev) and no CFG batch.
struct FluxRecipe: DenoisingRecipe {
    let model: FluxTransformer2DModel
    let embeds: Tensor, pooled: Tensor
    let guidance: [Float]
    let noiseShape: [Int]
    let imageIds: Tensor, textIds: Tensor

    init(model: FluxTransformer2DModel, vae: AutoencoderKL, request r: GenerationRequest, conditioning c: Conditioning) throws {
        let f = vae.config.upscaleFactor
        let (h, w) = try latentSize(r, native: 128 * f, vaeScale: f, multiple: 2 * f)
        guard model.config.inChannels % 4 == 0 else {
            throw WeightsError.badConfig(path: "transformer/config.json", reason: "in_channels \(model.config.inChannels) is not 4 × the latent channels")
        }
        (self.model, embeds, pooled) = (model, c.promptEmbeds, c.pooledPromptEmbeds!)
        guidance = model.config.guidanceEmbeds ? Array(repeating: Float(r.guidanceScale), count: c.batch) : []
        noiseShape = [c.batch, model.config.inChannels / 4, h, w]
        imageIds = fluxImageIds(rows: h / 2, cols: w / 2)
        textIds = Tensor(zeros: [c.promptEmbeds.size(1), 3])
    }

    /// One token per 2×2 patch of the latents.
    var tokenGrid: (rows: Int, columns: Int) { (noiseShape[2] / 2, noiseShape[3] / 2) }

    func initialLatents(_ noise: Tensor, initNoiseSigma: Float) -> Tensor { packLatents(noise) }

    func setTimesteps(_ scheduler: inout any Scheduler, steps: Int) throws {
        guard var flow = scheduler as? FlowMatchEulerDiscreteScheduler else {
            throw WeightsError.badConfig(path: "scheduler/scheduler_config.json", reason: "FluxPipeline needs FlowMatchEulerDiscreteScheduler, not \(scheduler.className)")
        }
        let tokens = (noiseShape[2] / 2) * (noiseShape[3] / 2)
        try flow.setTimesteps(sigmas: FlowMatchEulerDiscreteScheduler.fluxSigmas(steps: steps), mu: flow.mu(imageSeqLen: tokens))
        scheduler = flow
    }

    func inputs(_ latents: Tensor, timestep t: Float) -> ModelInputs {
        // The pipeline passes timestep / 1000 (float32); the model scales it back by 1000.
        .flux(FluxInputs(hiddenStates: latents, encoderHiddenStates: embeds, pooledProjections: pooled,
                         timestep: Array(repeating: t / 1000, count: latents.size(0)), imgIds: imageIds, txtIds: textIds, guidance: guidance))
    }

    func modelOutput(_ output: Tensor) -> Tensor { output }

    func vaeLatents(_ latents: Tensor) -> Tensor { unpackLatents(latents, height: noiseShape[2], width: noiseShape[3]) }
}
