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

    static let family = PipelineFamily(pipelineClasses: ["StableDiffusion3Pipeline"],
                                       transformerClass: "SD3Transformer2DModel") { model, vae, request, conditioning in
        let m: SD3Transformer2DModel = try cast(model)
        let c = try textConditioning(conditioning, request: request, pipeline: "StableDiffusion3Pipeline")
        try c.check(width: m.config.jointAttentionDim, pooled: m.config.pooledProjectionDim,
                    negativeNeeded: request.guidanceScale > 1, model: m.className)
        return try SD3Recipe(model: m, vae: vae, request: request, conditioning: c)
    }

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

    func inputs(_ latents: Tensor, timestep t: Float) -> any TransformerInputs {
        let x = guidance > 1 ? catBatch([latents, latents]) : latents
        return SD3Inputs(hiddenStates: x, encoderHiddenStates: embeds, pooledProjections: pooled,
                              timestep: Array(repeating: t, count: x.size(0)))
    }

    func modelOutput(_ output: Tensor) -> Tensor {
        guard guidance > 1 else { return output }
        let b = output.size(0) / 2
        return classifierFreeGuidance(uncond: output.rows(0..<b), cond: output.rows(b..<(2 * b)), scale: guidance)
    }
}

