import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// PixArtAlphaPipeline / PixArtSigmaPipeline with given embeddings: [negative; positive] under
/// guidance, size conditioning when the model uses it, learned variance dropped after guidance.
struct PixArtRecipe: DenoisingRecipe {
    let model: PixArtTransformer2DModel
    let embeds: Tensor, mask: Tensor?
    let guidance: Double
    let noiseShape: [Int]
    let resolution: [Float], aspectRatio: [Float]

    static let family = PipelineFamily(pipelineClasses: ["PixArtAlphaPipeline", "PixArtSigmaPipeline"],
                                       transformerClass: "PixArtTransformer2DModel",
                                       encodePrompt: encodePrompt) { model, scale, request, conditioning in
        let m: PixArtTransformer2DModel = try cast(model)
        let c = try textConditioning(conditioning, request: request, pipeline: "PixArt")
        try c.check(width: m.config.captionChannels ?? m.config.crossAttentionDim ?? m.config.innerDim, pooled: nil,
                    negativeNeeded: request.guidanceScale > 1, model: m.className)
        return try PixArtRecipe(model: m, scale: scale, request: request, conditioning: c)
    }

    /// PixArt's encode_prompt: T5 with its padding masked, 120 tokens (α) or 300 (Σ); the negative
    /// prompt ("" by default) padded to the same length. Without caption cleaning diffusers still
    /// lower-cases and strips every prompt.
    static func encodePrompt(_ e: inout TextEncoders, _ p: TextPrompt, _ guidance: Double) throws -> Conditioning {
        func preprocessed(_ text: String) -> String { text.lowercased().trimmingCharacters(in: .whitespacesAndNewlines) }
        let length = p.maxSequenceLength ?? (e.folder.className == "PixArtSigmaPipeline" ? 300 : 120)
        let (embeds, mask) = try e.t5(p.prompts.map(preprocessed), tokenizer: "tokenizer", encoder: "text_encoder", length: length, masked: true)
        guard guidance > 1 else { return Conditioning(promptEmbeds: embeds, promptAttentionMask: mask) }
        let negative = Array(repeating: preprocessed(p.negativePrompt ?? ""), count: p.prompts.count)
        let (negativeEmbeds, negativeMask) = try e.t5(negative, tokenizer: "tokenizer", encoder: "text_encoder", length: length, masked: true)
        return Conditioning(promptEmbeds: embeds, negativePromptEmbeds: negativeEmbeds, promptAttentionMask: mask,
                            negativePromptAttentionMask: negativeMask)
    }

    init(model: PixArtTransformer2DModel, scale: LatentScale, request r: GenerationRequest,
         conditioning c: Conditioning) throws {
        let f = scale.spatial
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

    var batchHalves: Int { guidance > 1 ? 2 : 1 }

    var tokenGrid: (rows: Int, columns: Int) { (noiseShape[2] / model.config.patchSize, noiseShape[3] / model.config.patchSize) }

    /// prepare_latents scales the noise by the scheduler's init_noise_sigma.
    func initialLatents(_ noise: Tensor, initNoiseSigma: Float) -> Tensor { initNoiseSigma == 1 ? noise : scale(noise, by: initNoiseSigma) }

    func inputs(_ latents: Tensor, timestep t: Float) -> any TransformerInputs {
        let x = guidance > 1 ? catBatch([latents, latents]) : latents
        return PixArtInputs(hiddenStates: x, encoderHiddenStates: embeds, timestep: Array(repeating: t, count: x.size(0)),
                                    encoderAttentionMask: mask, resolution: resolution, aspectRatio: aspectRatio)
    }

    func modelOutput(_ output: Tensor) -> Tensor {
        let b = output.size(0) / (guidance > 1 ? 2 : 1)
        let out = guidance > 1 ? classifierFreeGuidance(uncond: output.rows(0..<b), cond: output.rows(b..<(2 * b)), scale: guidance) : output
        let c = model.config.inChannels
        return model.config.outputChannels / 2 == c ? channels(out, 0..<c) : out
    }
}
