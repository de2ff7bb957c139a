import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// The latent grid of a request: pixels / the VAE's factor, both multiples of `multiple`
/// (the VAE factor times the transformer's patch or packing).
func latentSize(_ r: GenerationRequest, native: Int, vaeScale: Int, multiple: Int) throws -> (Int, Int) {
    let (h, w) = (r.height ?? native, r.width ?? native)
    for (name, v) in [("height", h), ("width", w)] where v < multiple || v % multiple != 0 {
        let near = max(multiple, (v / multiple) * multiple)
        throw WeightsError.badInput(name: "size", reason: "\(name) \(v) is not a positive multiple of \(multiple) (the VAE's factor \(vaeScale) × the model's patch); use e.g. \(near)")
    }
    return (h / vaeScale, w / vaeScale)
}

/// DiTPipeline: class labels, then the null class under guidance; the whole doubled batch is
/// stepped (both halves equal), guidance acts on the epsilon channels only.
struct DiTRecipe: DenoisingRecipe {
    let model: DiTTransformer2DModel
    let labels: [Int]
    let guidance: Double
    let noiseShape: [Int]
    var scaling: LatentScaling { .reciprocal }
    var guided: Bool { guidance > 1 }

    init(model: DiTTransformer2DModel, vae: AutoencoderKL, request r: GenerationRequest) throws {
        let c = model.config, classes = c.numEmbedsAdaNorm
        guard !r.classLabels.isEmpty else { throw WeightsError.badInput(name: "class", reason: "DiT needs at least one --class (0..<\(classes))") }
        if let bad = r.classLabels.first(where: { $0 < 0 || $0 >= classes }) {
            throw WeightsError.badInput(name: "class", reason: "class \(bad) is outside 0..<\(classes)")
        }
        let (h, w) = try latentSize(r, native: c.sampleSize * vae.config.upscaleFactor, vaeScale: vae.config.upscaleFactor,
                                    multiple: vae.config.upscaleFactor * c.patchSize)
        guard h == w else { throw WeightsError.badInput(name: "size", reason: "DiT makes square images; got \(h * vae.config.upscaleFactor)x\(w * vae.config.upscaleFactor)") }
        (self.model, labels, guidance) = (model, r.classLabels, r.guidanceScale)
        noiseShape = [labels.count, c.inChannels, h, w]
    }

    var tokenGrid: (rows: Int, columns: Int) { (noiseShape[2] / model.config.patchSize, noiseShape[3] / model.config.patchSize) }

    func initialLatents(_ noise: Tensor, initNoiseSigma: Float) -> Tensor { guided ? catBatch([noise, noise]) : noise }

    func inputs(_ latents: Tensor, timestep t: Float) -> ModelInputs {
        // The pipeline re-doubles the first half each step.
        let x = guided ? catBatch([latents.rows(0..<labels.count), latents.rows(0..<labels.count)]) : latents
        let classes = guided ? labels + Array(repeating: model.config.numEmbedsAdaNorm, count: labels.count) : labels
        return .dit(DiTInputs(hiddenStates: x, timestep: Array(repeating: t, count: x.size(0)), classLabels: classes))
    }

    func modelOutput(_ output: Tensor) -> Tensor {
        let c = model.config.inChannels, b = labels.count
        var out = output
        if guided {
            let eps = channels(output, 0..<c)
            let half = classifierFreeGuidance(uncond: eps.rows(b..<(2 * b)), cond: eps.rows(0..<b), scale: guidance)
            out = catChannels(catBatch([half, half]), channels(output, c..<output.size(1)))
        }
        return model.config.outputChannels / 2 == c ? channels(out, 0..<c) : out
    }

    func finalLatents(_ latents: Tensor) -> Tensor { guided ? latents.rows(0..<labels.count) : latents }
}

/// PixArtAlphaPipeline / PixArtSigmaPipeline with given embeddings: [negative; positive] under
/// guidance, size conditioning when the model uses it, learned variance dropped after guidance.
struct PixArtRecipe: DenoisingRecipe {
    let model: PixArtTransformer2DModel
    let embeds: Tensor, mask: Tensor?
    let guidance: Double
    let noiseShape: [Int]
    let resolution: [Float], aspectRatio: [Float]

    init(model: PixArtTransformer2DModel, vae: AutoencoderKL, request r: GenerationRequest, conditioning c: Conditioning) throws {
        let f = vae.config.upscaleFactor
        let (h, w) = try latentSize(r, native: model.config.sampleSize * f, vaeScale: f, multiple: f * model.config.patchSize)
        let guided = r.guidanceScale > 1
        embeds = guided ? catBatch([c.negativePromptEmbeds!, c.promptEmbeds]) : c.promptEmbeds
        mask = c.promptAttentionMask.map { guided ? catBatch([c.negativePromptAttentionMask!, $0]) : $0 }
        (self.model, guidance) = (model, r.guidanceScale)
        noiseShape = [c.batch, model.config.inChannels, h, w]
        // resolution [height, width] and aspect_ratio height/width (a Python float) per row.
        let rows = embeds.size(0), (height, width) = (h * f, w * f)
        resolution = model.config.additionalConditions ? Array((0..<rows).map { _ in [Float(height), Float(width)] }.joined()) : []
        aspectRatio = model.config.additionalConditions ? Array(repeating: Float(Double(height) / Double(width)), count: rows) : []
    }

    var tokenGrid: (rows: Int, columns: Int) { (noiseShape[2] / model.config.patchSize, noiseShape[3] / model.config.patchSize) }

    /// prepare_latents scales the noise by the scheduler's init_noise_sigma.
    func initialLatents(_ noise: Tensor, initNoiseSigma: Float) -> Tensor { initNoiseSigma == 1 ? noise : scale(noise, by: initNoiseSigma) }

    func inputs(_ latents: Tensor, timestep t: Float) -> ModelInputs {
        let x = guidance > 1 ? catBatch([latents, latents]) : latents
        return .pixart(PixArtInputs(hiddenStates: x, encoderHiddenStates: embeds, timestep: Array(repeating: t, count: x.size(0)),
                                    encoderAttentionMask: mask, resolution: resolution, aspectRatio: aspectRatio))
    }

    func modelOutput(_ output: Tensor) -> Tensor {
        let b = output.size(0) / (guidance > 1 ? 2 : 1)
        let out = guidance > 1 ? classifierFreeGuidance(uncond: output.rows(0..<b), cond: output.rows(b..<(2 * b)), scale: guidance) : output
        let c = model.config.inChannels
        return model.config.outputChannels / 2 == c ? channels(out, 0..<c) : out
    }
}
