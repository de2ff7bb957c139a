import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// Text conditioning given as embeddings (`--prompt-embeds FILE`), named as the diffusers
/// pipelines' `__call__` arguments: prompt_embeds [B, L, C], negative_prompt_embeds, the attention
/// masks [B, L] (PixArt) and the pooled embeddings [B, P] (SD3, Flux). Checked against the model.
public struct Conditioning {
    public var promptEmbeds: Tensor
    public var negativePromptEmbeds: Tensor?
    public var promptAttentionMask: Tensor?
    public var negativePromptAttentionMask: Tensor?
    public var pooledPromptEmbeds: Tensor?
    public var negativePooledPromptEmbeds: Tensor?

    /// Conditioning a pipeline's text encoders made (`TextToImagePipeline.encodePrompt`).
    public init(promptEmbeds: Tensor, negativePromptEmbeds: Tensor? = nil, promptAttentionMask: Tensor? = nil,
                negativePromptAttentionMask: Tensor? = nil, pooledPromptEmbeds: Tensor? = nil, negativePooledPromptEmbeds: Tensor? = nil) {
        (self.promptEmbeds, self.negativePromptEmbeds) = (promptEmbeds, negativePromptEmbeds)
        (self.promptAttentionMask, self.negativePromptAttentionMask) = (promptAttentionMask, negativePromptAttentionMask)
        (self.pooledPromptEmbeds, self.negativePooledPromptEmbeds) = (pooledPromptEmbeds, negativePooledPromptEmbeds)
    }

    public init(file: SafeTensorsFile) throws {
        // Masks may be stored as integers (as the tokenizers give them) or floats.
        func read(_ name: String) throws -> Tensor? {
            guard let entry = file.entries[name] else { return nil }
            return Tensor(shape: entry.shape, values: try file.values(name).map { Float($0) })
        }
        guard let prompt = try read("prompt_embeds") else {
            throw WeightsError.badInput(name: "prompt_embeds", reason: "missing from \(file.path)")
        }
        promptEmbeds = prompt
        negativePromptEmbeds = try read("negative_prompt_embeds")
        promptAttentionMask = try read("prompt_attention_mask")
        negativePromptAttentionMask = try read("negative_prompt_attention_mask")
        pooledPromptEmbeds = try read("pooled_prompt_embeds")
        negativePooledPromptEmbeds = try read("negative_pooled_prompt_embeds")
    }

    public var batch: Int { promptEmbeds.size(0) }

    /// Refuses embeddings a model of this text width (and pooled width, if it takes pooled
    /// embeddings) cannot take, or that guidance needs (`negativeNeeded`) and are absent.
    func check(width: Int, pooled: Int?, negativeNeeded: Bool, model: String) throws {
        guard promptEmbeds.rank == 3 else {
            throw WeightsError.badInput(name: "prompt_embeds", reason: "has shape \(promptEmbeds.shape), expected [batch, tokens, \(width)]")
        }
        try shape("prompt_embeds", promptEmbeds, [batch, promptEmbeds.size(1), width])
        if let mask = promptAttentionMask { try shape("prompt_attention_mask", mask, [batch, promptEmbeds.size(1)]) }
        if let pooled {
            guard let p = pooledPromptEmbeds else {
                throw WeightsError.badInput(name: "pooled_prompt_embeds", reason: "this \(model) needs pooled_prompt_embeds [\(batch), \(pooled)]")
            }
            try shape("pooled_prompt_embeds", p, [batch, pooled])
        }
        guard negativeNeeded else { return }
        guard let negative = negativePromptEmbeds else {
            throw WeightsError.badInput(name: "negative_prompt_embeds", reason: "guidance above 1 needs negative_prompt_embeds (or pass --guidance 1)")
        }
        try shape("negative_prompt_embeds", negative, promptEmbeds.shape)
        if promptAttentionMask != nil {
            guard let m = negativePromptAttentionMask else {
                throw WeightsError.badInput(name: "negative_prompt_attention_mask", reason: "prompt_attention_mask is given, so its negative is needed too")
            }
            try shape("negative_prompt_attention_mask", m, [batch, negative.size(1)])
        }
        if let pooled {
            guard let p = negativePooledPromptEmbeds else {
                throw WeightsError.badInput(name: "negative_pooled_prompt_embeds", reason: "guidance above 1 needs negative_pooled_prompt_embeds [\(batch), \(pooled)]")
            }
            try shape("negative_pooled_prompt_embeds", p, [batch, pooled])
        }
    }

    func shape(_ name: String, _ t: Tensor, _ expected: [Int]) throws {
        guard t.shape == expected else {
            throw WeightsError.badInput(name: name, reason: "has shape \(t.shape), this model needs \(expected) (the last size is the model's embedding width)")
        }
    }
}
