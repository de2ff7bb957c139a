import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// WanPipeline (Wan 2.1 text-to-video) with given embeddings: latents [B, C, (frames − 1)/4 + 1,
/// H/8, W/8] from randn, the timestep as the scheduler gives it, and under guidance the
/// unconditional and conditional passes (two calls in diffusers, one [negative; positive] batch
/// here: the kernels give each sample the same bits either way) combined as uncond + g·(cond − uncond).
struct WanRecipe: DenoisingRecipe {
    let model: WanTransformer3DModel
    let embeds: Tensor
    let guidance: Double
    let noiseShape: [Int]

    /// WanPipeline's defaults: 480×832, 81 frames.
    static let defaultSize = (height: 480, width: 832, frames: 81)

    static let family = PipelineFamily(pipelineClasses: ["WanPipeline"], transformerClass: "WanTransformer3DModel",
                                       encodePrompt: encodePrompt) { model, scale, request, conditioning in
        let m: WanTransformer3DModel = try cast(model)
        let c = try textConditioning(conditioning, request: request, pipeline: "WanPipeline")
        try c.check(width: m.config.textDim, pooled: nil, negativeNeeded: request.guidanceScale > 1, model: m.className)
        return try WanRecipe(model: m, scale: scale, request: request, conditioning: c)
    }

    /// Wan's encode_prompt: prompt_clean, T5 ids padded to max_sequence_length (512) with the mask
    /// given to UMT5, and the embeddings past each prompt's tokens set to zero; the negative prompt
    /// ("" by default) the same way under guidance.
    static func encodePrompt(_ e: inout TextEncoders, _ p: TextPrompt, _ guidance: Double) throws -> Conditioning {
        let length = p.maxSequenceLength ?? 512
        func encode(_ texts: [String]) throws -> Tensor {
            let (embeds, mask) = try e.t5(texts.map(promptClean), tokenizer: "tokenizer", encoder: "text_encoder",
                                          length: length, masked: true)
            return zeroPadding(embeds, mask: mask!)
        }
        let embeds = try encode(p.prompts)
        guard guidance > 1 else { return Conditioning(promptEmbeds: embeds) }
        let negative = try encode(Array(repeating: p.negativePrompt ?? "", count: p.prompts.count))
        return Conditioning(promptEmbeds: embeds, negativePromptEmbeds: negative)
    }

    init(model: WanTransformer3DModel, scale: LatentScale, request r: GenerationRequest,
         conditioning c: Conditioning) throws {
        let (height, width) = (r.height ?? Self.defaultSize.height, r.width ?? Self.defaultSize.width)
        let frames = r.frames ?? Self.defaultSize.frames
        let multiple = scale.spatial * model.config.patchSize[1]
        for (name, v) in [("height", height), ("width", width)]
        where v < multiple || v % multiple != 0 || v > maxImageSide {
            throw WeightsError.badInput(name: "size", reason: "\(name) \(v) is not a multiple of \(multiple) "
                                        + "(the VAE's factor × the patch) up to \(maxImageSide); "
                                        + "use e.g. \(max(multiple, v / multiple * multiple))")
        }
        guard frames >= 1, frames <= 100_000, (frames - 1) % scale.temporal == 0 else {
            throw WeightsError.badInput(name: "frames", reason: "\(frames) frames: Wan takes "
                                        + "\(scale.temporal)·k + 1 frames (1, \(scale.temporal + 1), … 81)")
        }
        let guided = r.guidanceScale > 1
        embeds = guided ? catBatch([c.negativePromptEmbeds!, c.promptEmbeds]) : c.promptEmbeds
        (self.model, guidance) = (model, r.guidanceScale)
        noiseShape = [c.batch, model.config.inChannels, (frames - 1) / scale.temporal + 1, height / scale.spatial,
                      width / scale.spatial]
    }

    var batchHalves: Int { guidance > 1 ? 2 : 1 }

    /// Frames × rows of tokens, columns: whole frames are rows of rows.
    var tokenGrid: (rows: Int, columns: Int) {
        let p = model.config.patchSize
        return (noiseShape[2] / p[0] * (noiseShape[3] / p[1]), noiseShape[4] / p[2])
    }

    func initialLatents(_ noise: Tensor, initNoiseSigma: Float) -> Tensor { noise }

    func inputs(_ latents: Tensor, timestep t: Float) -> any TransformerInputs {
        let x = guidance > 1 ? catBatch([latents, latents]) : latents
        return WanInputs(hiddenStates: x, timestep: Array(repeating: t, count: x.size(0)), encoderHiddenStates: embeds)
    }

    func modelOutput(_ output: Tensor) -> Tensor {
        guard guidance > 1 else { return output }
        let b = output.size(0) / 2
        return classifierFreeGuidance(uncond: output.rows(0..<b), cond: output.rows(b..<(2 * b)), scale: guidance)
    }
}

/// diffusers' prompt_clean without ftfy (not a dependency here, as for PixArt's caption cleaning):
/// HTML entities unescaped twice, runs of whitespace made one space, the ends trimmed.
public func promptClean(_ text: String) -> String {
    let unescaped = htmlUnescape(htmlUnescape(text))
    return unescaped.split(whereSeparator: \.isWhitespace).joined(separator: " ")
}

/// The HTML character references of `text` decoded: numeric ones and the common named ones.
func htmlUnescape(_ text: String) -> String {
    guard text.contains("&") else { return text }
    let named = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}"]
    var out = "", rest = Substring(text)
    while let amp = rest.firstIndex(of: "&") {
        out += rest[..<amp]
        let after = rest[rest.index(after: amp)...]
        if let semi = after.prefix(12).firstIndex(of: ";") {
            let name = after[..<semi]
            let scalar: Unicode.Scalar? = name.hasPrefix("#x") || name.hasPrefix("#X")
                ? UInt32(name.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
                : name.hasPrefix("#") ? UInt32(name.dropFirst()).flatMap(Unicode.Scalar.init) : nil
            if let decoded = scalar.map(String.init) ?? named[String(name)] {
                out += decoded
                rest = after[after.index(after: semi)...]
                continue
            }
        }
        out += "&"
        rest = after
    }
    return out + rest
}

/// Embeddings [B, L, C] with the rows whose mask [B, L] is 0 set to zero (Wan pads with zeros).
func zeroPadding(_ embeds: Tensor, mask: Tensor) -> Tensor {
    let out = embeds.copy(), (b, l, c) = (embeds.size(0), embeds.size(1), embeds.size(2))
    let keep = mask.scalars
    for n in 0..<b {
        for t in 0..<l where keep[n * l + t] == 0 { (out.data + (n * l + t) * c).update(repeating: 0, count: c) }
    }
    return out
}
