import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// transformers' `T5Config`: the keys the encoder reads (transformers' defaults).
public struct T5Config: Decodable, Sendable {
    public var vocabSize = 32128, dModel = 512, dKv = 64, dFf = 2048, numLayers = 6, numHeads = 8
    public var relativeAttentionNumBuckets = 32, relativeAttentionMaxDistance = 128
    public var layerNormEpsilon = 1e-6, feedForwardProj = "relu"

    enum CodingKeys: String, CodingKey {
        case vocabSize, dModel, dKv, dFf, numLayers, numHeads, relativeAttentionNumBuckets, relativeAttentionMaxDistance
        case layerNormEpsilon, feedForwardProj
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.value(.vocabSize, default: vocabSize)
        dModel = try c.value(.dModel, default: dModel)
        dKv = try c.value(.dKv, default: dKv)
        dFf = try c.value(.dFf, default: dFf)
        numLayers = try c.value(.numLayers, default: numLayers)
        numHeads = try c.value(.numHeads, default: numHeads)
        relativeAttentionNumBuckets = try c.value(.relativeAttentionNumBuckets, default: relativeAttentionNumBuckets)
        relativeAttentionMaxDistance = try c.value(.relativeAttentionMaxDistance, default: relativeAttentionMaxDistance)
        layerNormEpsilon = try c.value(.layerNormEpsilon, default: layerNormEpsilon)
        feedForwardProj = try c.value(.feedForwardProj, default: feedForwardProj)
    }
}

/// transformers' `T5EncoderModel`: shared token embeddings; pre-RMS-norm blocks of self-attention
/// (unscaled scores plus a bias per head from bucketed relative positions, computed once in block
/// 0 and shared by all blocks, plus the key mask) and T5 v1.1's gated-GELU feed-forward; a final
/// RMS norm. `UMT5EncoderModel` (Wan's encoder) is the same with a relative bias table in every block.
public struct T5EncoderModel {
    public let config: T5Config
    let embedding: Tensor
    /// [buckets, heads]: one for T5 (block 0's), one per block for UMT5.
    let relativeBiases: [Tensor]
    let blocks: [T5Block]
    let finalNorm: Tensor

    public init(directory: String, weightsDType: WeightsDType = .stored) throws {
        let file = try ConfigFile(directory: directory)
        guard ["T5EncoderModel", "UMT5EncoderModel"].contains(file.className) else {
            throw WeightsError.badConfig(path: file.path,
                                         reason: "\(file.className) is not a T5EncoderModel or UMT5EncoderModel")
        }
        let weights = Weights(checkpoint: try Checkpoint(directory: directory), dtype: weightsDType)
        try self.init(config: file.decode(T5Config.self), weights: weights,
                      biasPerLayer: file.className == "UMT5EncoderModel")
        // The encoder's own copy of the tied embedding, when saved, equals `shared`.
        try weights.checkAllUsed(ignoring: { $0 == "encoder.embed_tokens.weight" })
    }

    public init(config c: T5Config, weights: Weights, biasPerLayer: Bool = false) throws {
        config = c
        // T5 v1.1, the encoder of every diffusers pipeline (PixArt, SD3, Flux).
        guard c.feedForwardProj == "gated-gelu" else {
            throw WeightsError.badConfig(
                path: "config.json", reason: "feed_forward_proj \"\(c.feedForwardProj)\" is not supported (gated-gelu)")
        }
        embedding = try weights.contains("shared.weight")
            ? weights.tensor("shared.weight", shape: [c.vocabSize, c.dModel])
            : weights.scope("encoder").scope("embed_tokens").tensor("weight", shape: [c.vocabSize, c.dModel])
        let e = weights.scope("encoder").scope("block")
        relativeBiases = try (0..<(biasPerLayer ? c.numLayers : 1)).map { i in
            try e.scope(i).scope("layer").scope(0).scope("SelfAttention").scope("relative_attention_bias")
                .tensor("weight", shape: [c.relativeAttentionNumBuckets, c.numHeads])
        }
        blocks = try (0..<c.numLayers).map { try T5Block(e.scope($0), config: c) }
        finalNorm = try weights.scope("encoder").scope("final_layer_norm").tensor("weight", shape: [c.dModel])
    }

    /// `ids`: B rows of one length L; `mask`: 1 for a token, 0 for padding (nil: every token).
    /// Returns last_hidden_state [B, L, d_model].
    public func callAsFunction(ids: [[Int]], mask: [[Int]]? = nil) throws -> Tensor {
        let (b, l, h) = (ids.count, ids.first?.count ?? 0, config.numHeads)
        guard b > 0, l > 0, ids.allSatisfy({ $0.count == l }),
              ids.joined().allSatisfy({ $0 >= 0 && $0 < config.vocabSize }) else {
            throw WeightsError.badInput(name: "input_ids",
                                        reason: "T5 takes rows of one length with ids below \(config.vocabSize)")
        }
        if let mask, mask.count != b || mask.contains(where: { $0.count != l }) {
            throw WeightsError.badInput(name: "attention_mask", reason: "not [\(b), \(l)] like input_ids")
        }
        var x = embeddingRows(embedding, ids: Array(ids.joined())).reshaped([b, l, config.dModel])
        // bias[b, h, i, j] = relative_attention_bias[bucket(j − i), h] + (masked key j ? float min : 0).
        // The bucket depends only on j − i (offset + l − 1 indexes it); the key mask only on (n, j).
        let buckets = (0..<(2 * l - 1)).map { relativePositionBucket($0 - (l - 1)) }
        let keyBias = (0..<b).map { n in
            (0..<l).map { j in mask.map { $0[n][j] == 0 } == true ? -Float.greatestFiniteMagnitude : 0 }
        }
        func bias(_ table: [Float]) -> Tensor {
            var values = [Float](repeating: 0, count: b * h * l * l)
            for n in 0..<b { for head in 0..<h { for i in 0..<l {
                let row = ((n * h + head) * l + i) * l
                for j in 0..<l { values[row + j] = table[buckets[j - i + l - 1] * h + head] + keyBias[n][j] }
            } } }
            return Tensor(shape: [b, h, l, l], values: values)
        }
        let shared = relativeBiases.count == 1 ? bias(relativeBiases[0].scalars) : nil
        for (i, block) in blocks.enumerated() {
            x = block(x, bias: shared ?? bias(relativeBiases[i].scalars), eps: Float(config.layerNormEpsilon))
        }
        return rmsNorm(x, weight: finalNorm, eps: Float(config.layerNormEpsilon))
    }

    /// T5's bidirectional bucket of a key-minus-query offset: half the buckets per direction, exact
    /// below half of those, then logarithmic up to the maximum distance (in float32, as transformers).
    func relativePositionBucket(_ offset: Int) -> Int {
        let half = config.relativeAttentionNumBuckets / 2, exact = half / 2
        let n = abs(offset), base = offset > 0 ? half : 0
        guard n >= exact else { return base + n }
        let ratio = logf(Float(n) / Float(exact))
            / Float(log(Double(config.relativeAttentionMaxDistance) / Double(exact)))
        return base + min(exact + Int(ratio * Float(half - exact)), half - 1)
    }
}

/// One block: x + o(attention(rms(x))), then x + wo(act(wi(rms(x)))).
struct T5Block {
    let q: Linear, k: Linear, v: Linear, o: Linear
    let norm0: Tensor, norm1: Tensor
    let wi0: Linear, wi1: Linear, wo: Linear
    let heads: Int

    init(_ w: Weights, config c: T5Config) throws {
        let (a, f, inner) = (w.scope("layer").scope(0).scope("SelfAttention"), w.scope("layer").scope(1),
                             c.numHeads * c.dKv)
        (q, k, v) = (try Linear(a.scope("q"), in: c.dModel, out: inner, bias: false),
                     try Linear(a.scope("k"), in: c.dModel, out: inner, bias: false),
                     try Linear(a.scope("v"), in: c.dModel, out: inner, bias: false))
        o = try Linear(a.scope("o"), in: inner, out: c.dModel, bias: false)
        norm0 = try w.scope("layer").scope(0).scope("layer_norm").tensor("weight", shape: [c.dModel])
        norm1 = try f.scope("layer_norm").tensor("weight", shape: [c.dModel])
        let ff = f.scope("DenseReluDense")
        wi0 = try Linear(ff.scope("wi_0"), in: c.dModel, out: c.dFf, bias: false)
        wi1 = try Linear(ff.scope("wi_1"), in: c.dModel, out: c.dFf, bias: false)
        wo = try Linear(ff.scope("wo"), in: c.dFf, out: c.dModel, bias: false)
        heads = c.numHeads
    }

    func callAsFunction(_ x: Tensor, bias: Tensor, eps: Float) -> Tensor {
        let h = rmsNorm(x, weight: norm0, eps: eps)
        let y = x + o(attention(q: q(h), k: k(h), v: v(h), heads: heads, scale: 1, bias: bias))
        let g = rmsNorm(y, weight: norm1, eps: eps)
        // gelu_new (the tanh form) of wi_0 gates wi_1.
        return y + wo(gelu(wi0(g), approximation: .tanh) * wi1(g))
    }
}
