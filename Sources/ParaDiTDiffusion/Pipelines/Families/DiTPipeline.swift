import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// DiTPipeline: class labels, then the null class under guidance; the whole doubled batch is
/// stepped (both halves equal), guidance acts on the epsilon channels only.
struct DiTRecipe: DenoisingRecipe {
    let model: DiTTransformer2DModel
    let labels: [Int]
    let guidance: Double
    let noiseShape: [Int]
    var scaling: LatentScaling { .reciprocal }
    var guided: Bool { guidance > 1 }
    var batchHalves: Int { guided ? 2 : 1 }

    static let family = PipelineFamily(pipelineClasses: ["DiTPipeline"], transformerClass: "DiTTransformer2DModel",
                                       defaultClassLabels: [207]) { model, scale, request, conditioning in
        if conditioning != nil { throw WeightsError.badInput(name: "prompt_embeds", reason: "DiT is class-conditional: pass --class, not --prompt-embeds") }
        return try DiTRecipe(model: cast(model), scale: scale, request: request)
    }

    init(model: DiTTransformer2DModel, scale: LatentScale, request r: GenerationRequest) throws {
        let c = model.config, classes = c.numEmbedsAdaNorm
        guard !r.classLabels.isEmpty else { throw WeightsError.badInput(name: "class", reason: "DiT needs at least one --class (0..<\(classes))") }
        if let bad = r.classLabels.first(where: { $0 < 0 || $0 >= classes }) {
            throw WeightsError.badInput(name: "class", reason: "class \(bad) is outside 0..<\(classes)")
        }
        let (h, w) = try latentSize(r, native: c.sampleSize * scale.spatial, vaeScale: scale.spatial,
                                    multiple: scale.spatial * c.patchSize)
        guard h == w else {
            throw WeightsError.badInput(name: "size", reason: "DiT makes square images; got "
                                        + "\(h * scale.spatial)x\(w * scale.spatial)")
        }
        (self.model, labels, guidance) = (model, r.classLabels, r.guidanceScale)
        noiseShape = [labels.count, c.inChannels, h, w]
    }

    var tokenGrid: (rows: Int, columns: Int) { (noiseShape[2] / model.config.patchSize, noiseShape[3] / model.config.patchSize) }

    func initialLatents(_ noise: Tensor, initNoiseSigma: Float) -> Tensor { guided ? catBatch([noise, noise]) : noise }

    func inputs(_ latents: Tensor, timestep t: Float) -> any TransformerInputs {
        // The pipeline re-doubles the first half each step.
        let x = guided ? catBatch([latents.rows(0..<labels.count), latents.rows(0..<labels.count)]) : latents
        let classes = guided ? labels + Array(repeating: model.config.numEmbedsAdaNorm, count: labels.count) : labels
        return DiTInputs(hiddenStates: x, timestep: Array(repeating: t, count: x.size(0)), classLabels: classes)
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

