import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// transformers' `CLIPTextConfig`: the keys the text transformer reads (transformers' defaults).
public struct CLIPTextConfig: Decodable, Sendable {
    public var vocabSize = 49408, hiddenSize = 512, intermediateSize = 2048, projectionDim = 512
    public var numHiddenLayers = 12, numAttentionHeads = 8, maxPositionEmbeddings = 77
    public var hiddenAct = "quick_gelu", layerNormEps = 1e-5, eosTokenId = 2

    enum CodingKeys: String, CodingKey {
        case vocabSize, hiddenSize, intermediateSize, projectionDim, numHiddenLayers, numAttentionHeads
        case maxPositionEmbeddings, hiddenAct, layerNormEps, eosTokenId
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.value(.vocabSize, default: vocabSize)
        hiddenSize = try c.value(.hiddenSize, default: hiddenSize)
        intermediateSize = try c.value(.intermediateSize, default: intermediateSize)
        projectionDim = try c.value(.projectionDim, default: projectionDim)
        numHiddenLayers = try c.value(.numHiddenLayers, default: numHiddenLayers)
        numAttentionHeads = try c.value(.numAttentionHeads, default: numAttentionHeads)
        maxPositionEmbeddings = try c.value(.maxPositionEmbeddings, default: maxPositionEmbeddings)
        hiddenAct = try c.value(.hiddenAct, default: hiddenAct)
        layerNormEps = try c.value(.layerNormEps, default: layerNormEps)
        eosTokenId = try c.value(.eosTokenId, default: eosTokenId)
    }
}

/// What the pipelines read of a CLIP text encoder.
public struct CLIPTextOutput {
    /// [B, L, hidden] after the final layer norm.
    public var lastHiddenState: Tensor
    /// [B, L, hidden]: the input of the last layer (`hidden_states[-2]`, SD3's and Flux's choice).
    public var penultimate: Tensor
    /// [B, hidden]: the final state at each row's end token.
    public var pooled: Tensor
    /// [B, projection]: `pooled` projected (`CLIPTextModelWithProjection`'s `text_embeds`), if the model has it.
    public var textEmbeds: Tensor?
}

/// transformers' `CLIPTextModel` and `CLIPTextModelWithProjection` (the key tree of either): token
/// and learned position embeddings, pre-norm layers of causal self-attention and an MLP, a final
/// layer norm, pooling at the end token, and the optional text projection.
public struct CLIPTextModel {
    public let config: CLIPTextConfig
    let tokenEmbedding: Tensor, positionEmbedding: Tensor
    let layers: [CLIPEncoderLayer]
    let finalLayerNorm: LayerNorm
    let textProjection: Linear?

    /// A text encoder folder (config.json, model.safetensors) as transformers saves it.
    public init(directory: String, weightsDType: WeightsDType = .stored) throws {
        let file = try ConfigFile(directory: directory)
        guard ["CLIPTextModel", "CLIPTextModelWithProjection"].contains(file.className) else {
            throw WeightsError.badConfig(path: file.path, reason: "\(file.className) is not a CLIP text model")
        }
        let weights = Weights(checkpoint: try Checkpoint(directory: directory), dtype: weightsDType)
        try self.init(config: file.decode(CLIPTextConfig.self), weights: weights,
                      projection: file.className == "CLIPTextModelWithProjection")
        try weights.checkAllUsed(ignoring: { $0.hasSuffix("position_ids") })
    }

    public init(config: CLIPTextConfig, weights: Weights, projection: Bool) throws {
        self.config = config
        // Older transformers save CLIPTextModel's tree under "text_model.", newer ones at the root.
        let d = config.hiddenSize
        let w = projection || weights.contains("text_model.embeddings.token_embedding.weight")
            ? weights.scope("text_model") : weights
        guard config.numAttentionHeads > 0, d % config.numAttentionHeads == 0 else {
            throw WeightsError.badConfig(path: "config.json",
                                         reason: "hidden_size \(d) is not a multiple of num_attention_heads")
        }
        tokenEmbedding = try w.scope("embeddings").scope("token_embedding")
            .tensor("weight", shape: [config.vocabSize, d])
        positionEmbedding = try w.scope("embeddings").scope("position_embedding")
            .tensor("weight", shape: [config.maxPositionEmbeddings, d])
        layers = try (0..<config.numHiddenLayers).map {
            try CLIPEncoderLayer(w.scope("encoder").scope("layers").scope($0), config: config)
        }
        finalLayerNorm = try LayerNorm(w.scope("final_layer_norm"), dim: d,
                                       eps: Float(config.layerNormEps), affine: true)
        textProjection = projection
            ? try Linear(weights.scope("text_projection"), in: d, out: config.projectionDim, bias: false) : nil
    }

    /// `ids`: B rows of the same length L ≤ max_position_embeddings, each id below vocab_size.
    public func callAsFunction(ids: [[Int]]) throws -> CLIPTextOutput {
        let (b, l, d) = (ids.count, ids.first?.count ?? 0, config.hiddenSize)
        guard b > 0, l > 0, ids.allSatisfy({ $0.count == l }), l <= config.maxPositionEmbeddings else {
            throw WeightsError.badInput(name: "input_ids",
                                        reason: "\(b) rows of lengths \(Set(ids.map(\.count)).sorted()); "
                                            + "CLIP takes rows of one length up to \(config.maxPositionEmbeddings)")
        }
        guard ids.joined().allSatisfy({ $0 >= 0 && $0 < config.vocabSize }) else {
            throw WeightsError.badInput(name: "input_ids",
                                        reason: "an id outside the vocabulary of \(config.vocabSize)")
        }
        var x = embeddingRows(tokenEmbedding, ids: Array(ids.joined())).reshaped([b, l, d])
        addBroadcast(into: x, positionEmbedding.rows(0..<l))
        // Causal: token i sees tokens 0…i.
        let causal = Tensor(shape: [1, 1, l, l], values: (0..<(l * l)).map { $0 % l > $0 / l ? -Float.infinity : 0 })
        var penultimate = x
        for layer in layers {
            penultimate = x
            x = layer(x, bias: causal)
        }
        let last = finalLayerNorm(x)
        // The end token: the largest id (the legacy config, eos_token_id 2), else the first eos id.
        let ends = ids.map { row in row.firstIndex(of: config.eosTokenId == 2 ? row.max()! : config.eosTokenId) ?? 0 }
        let pooled = concatenate(ends.enumerated().map { i, e in
            last.rows(i..<(i + 1)).reshaped([l, d]).rows(e..<(e + 1))
        }, axis: 0)
        return CLIPTextOutput(lastHiddenState: last, penultimate: penultimate, pooled: pooled,
                              textEmbeds: textProjection.map { $0(pooled) })
    }
}

/// One pre-norm layer: x + out_proj(attention(layer_norm1(x))), then x + fc2(act(fc1(layer_norm2(x)))).
struct CLIPEncoderLayer {
    let q: Linear, k: Linear, v: Linear, out: Linear
    let norm1: LayerNorm, norm2: LayerNorm
    let fc1: Linear, fc2: Linear
    let heads: Int, quick: Bool

    init(_ w: Weights, config c: CLIPTextConfig) throws {
        let (d, a) = (c.hiddenSize, w.scope("self_attn"))
        (q, k, v, out) = (try Linear(a.scope("q_proj"), in: d, out: d), try Linear(a.scope("k_proj"), in: d, out: d),
                          try Linear(a.scope("v_proj"), in: d, out: d), try Linear(a.scope("out_proj"), in: d, out: d))
        norm1 = try LayerNorm(w.scope("layer_norm1"), dim: d, eps: Float(c.layerNormEps), affine: true)
        norm2 = try LayerNorm(w.scope("layer_norm2"), dim: d, eps: Float(c.layerNormEps), affine: true)
        fc1 = try Linear(w.scope("mlp").scope("fc1"), in: d, out: c.intermediateSize)
        fc2 = try Linear(w.scope("mlp").scope("fc2"), in: c.intermediateSize, out: d)
        guard ["quick_gelu", "gelu"].contains(c.hiddenAct) else {
            throw WeightsError.badConfig(path: "config.json",
                                         reason: "hidden_act \"\(c.hiddenAct)\" is not supported (quick_gelu, gelu)")
        }
        (heads, quick) = (c.numAttentionHeads, c.hiddenAct == "quick_gelu")
    }

    func callAsFunction(_ x: Tensor, bias: Tensor) -> Tensor {
        let h = norm1(x), headDim = x.size(2) / heads
        let y = x + out(attention(q: q(h), k: k(h), v: v(h), heads: heads,
                                  scale: 1 / Float(headDim).squareRoot(), bias: bias))
        let m = fc1(norm2(y))
        return y + fc2(quick ? quickGELU(m) : gelu(m))
    }
}
