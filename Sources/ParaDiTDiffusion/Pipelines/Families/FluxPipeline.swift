import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// FluxPipeline with given embeddings: packed 2×2 latents, sigmas linspace(1, 1/N, N) shifted by
/// mu from the packed sequence length, guidance through the embedding (dev) and no CFG batch.
struct FluxRecipe: DenoisingRecipe {
    let model: FluxTransformer2DModel
    let embeds: Tensor, pooled: Tensor
    let guidance: [Float]
    let noiseShape: [Int]
    let imageIds: Tensor, textIds: Tensor

    static let family = PipelineFamily(pipelineClasses: ["FluxPipeline"],
                                       transformerClass: "FluxTransformer2DModel",
                                       encodePrompt: encodePrompt) { model, scale, request, conditioning in
        let m: FluxTransformer2DModel = try cast(model)
        let c = try textConditioning(conditioning, request: request, pipeline: "FluxPipeline")
        // Flux embeds guidance instead of running an unconditional batch.
        try c.check(width: m.config.jointAttentionDim, pooled: m.config.pooledProjectionDim, negativeNeeded: false, model: m.className)
        return try FluxRecipe(model: m, scale: scale, request: request, conditioning: c)
    }

    /// Flux's encode_prompt: T5 states (512 tokens, unmasked) and CLIP-L's pooled output. Guidance
    /// is embedded, so there is no negative prompt.
    static func encodePrompt(_ e: inout TextEncoders, _ p: TextPrompt, _ guidance: Double) throws -> Conditioning {
        if p.negativePrompt != nil {
            throw WeightsError.badInput(name: "negative-prompt", reason: "FluxPipeline embeds guidance and takes no negative prompt")
        }
        let pooled = try e.clip(p.prompts, tokenizer: "tokenizer", encoder: "text_encoder").pooled
        let (embeds, _) = try e.t5(p.prompts, tokenizer: "tokenizer_2", encoder: "text_encoder_2", length: p.maxSequenceLength ?? 512, masked: false)
        return Conditioning(promptEmbeds: embeds, pooledPromptEmbeds: pooled)
    }

    init(model: FluxTransformer2DModel, scale: LatentScale, request r: GenerationRequest,
         conditioning c: Conditioning) throws {
        let f = scale.spatial
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

    func inputs(_ latents: Tensor, timestep t: Float) -> any TransformerInputs {
        // The pipeline passes timestep / 1000 (float32); the model scales it back by 1000.
        FluxInputs(hiddenStates: latents, encoderHiddenStates: embeds, pooledProjections: pooled,
                         timestep: Array(repeating: t / 1000, count: latents.size(0)), imgIds: imageIds, txtIds: textIds, guidance: guidance)
    }

    func modelOutput(_ output: Tensor) -> Tensor { output }

    func vaeLatents(_ latents: Tensor) -> Tensor { unpackLatents(latents, height: noiseShape[2], width: noiseShape[3]) }
}
