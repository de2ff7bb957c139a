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
                                       transformerClass: "SD3Transformer2DModel",
                                       encodePrompt: encodePrompt) { model, scale, request, conditioning in
        let m: SD3Transformer2DModel = try cast(model)
        let c = try textConditioning(conditioning, request: request, pipeline: "StableDiffusion3Pipeline")
        try c.check(width: m.config.jointAttentionDim, pooled: m.config.pooledProjectionDim,
                    negativeNeeded: request.guidanceScale > 1, model: m.className)
        return try SD3Recipe(model: m, scale: scale, request: request, conditioning: c)
    }

    /// SD3's encode_prompt: CLIP-L ‖ CLIP-G penultimate states (features side by side), zero-padded
    /// to the T5 width, then the T5 states (256 tokens, unmasked; zeros without a T5) after them in
    /// the sequence; pooled CLIP-L ‖ CLIP-G projections. The negative prompt defaults to "".
    static func encodePrompt(_ e: inout TextEncoders, _ p: TextPrompt, _ guidance: Double) throws -> Conditioning {
        func encode(_ texts: [String]) throws -> (Tensor, Tensor) {
            let l = try e.clip(texts, tokenizer: "tokenizer", encoder: "text_encoder")
            let g = try e.clip(texts, tokenizer: "tokenizer_2", encoder: "text_encoder_2")
            let clip = concatFeatures([l.penultimate, g.penultimate]), length = p.maxSequenceLength ?? 256
            let t5 = e.has("text_encoder_3")
                ? try e.t5(texts, tokenizer: "tokenizer_3", encoder: "text_encoder_3", length: length, masked: false).0
                : Tensor(zeros: [texts.count, length, clip.size(2)])
            guard t5.size(2) >= clip.size(2) else {
                throw WeightsError.badConfig(path: e.folder.path("text_encoder_3"), reason: "T5 width \(t5.size(2)) is below the CLIP width \(clip.size(2))")
            }
            let padded = t5.size(2) == clip.size(2) ? clip : concatFeatures([clip, Tensor(zeros: [clip.size(0), clip.size(1), t5.size(2) - clip.size(2)])])
            return (concatSequence([padded, t5]), concatFeatures([l.textEmbeds ?? l.pooled, g.textEmbeds ?? g.pooled]))
        }
        let (embeds, pooled) = try encode(p.prompts)
        guard guidance > 1 else { return Conditioning(promptEmbeds: embeds, pooledPromptEmbeds: pooled) }
        let (negative, negativePooled) = try encode(Array(repeating: p.negativePrompt ?? "", count: p.prompts.count))
        return Conditioning(promptEmbeds: embeds, negativePromptEmbeds: negative, pooledPromptEmbeds: pooled,
                            negativePooledPromptEmbeds: negativePooled)
    }

    init(model: SD3Transformer2DModel, scale: LatentScale, request r: GenerationRequest,
         conditioning c: Conditioning) throws {
        let f = scale.spatial
        let (h, w) = try latentSize(r, native: model.config.sampleSize * f, vaeScale: f, multiple: f * model.config.patchSize)
        let guided = r.guidanceScale > 1
        embeds = guided ? catBatch([c.negativePromptEmbeds!, c.promptEmbeds]) : c.promptEmbeds
        pooled = guided ? catBatch([c.negativePooledPromptEmbeds!, c.pooledPromptEmbeds!]) : c.pooledPromptEmbeds!
        (self.model, guidance) = (model, r.guidanceScale)
        noiseShape = [c.batch, model.config.inChannels, h, w]
    }

    var batchHalves: Int { guidance > 1 ? 2 : 1 }

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

