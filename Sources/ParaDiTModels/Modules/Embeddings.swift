import ParaDiTTensor
import ParaDiTWeights

/// `Timesteps`: the sinusoidal projection of the timestep (no weights).
public struct Timesteps {
    public var channels: Int
    public var flipSinToCos: Bool
    public var downscaleFreqShift: Float

    public func callAsFunction(_ timesteps: [Float]) -> Tensor {
        timestepEmbedding(timesteps, dim: channels, flipSinToCos: flipSinToCos, downscaleFreqShift: downscaleFreqShift)
    }
}

/// `TimestepEmbedding`: linear_1 → SiLU → linear_2.
public struct TimestepEmbedding {
    let linear1: Linear, linear2: Linear

    public init(_ w: Weights, in inChannels: Int, dim: Int) throws {
        linear1 = try Linear(w.scope("linear_1"), in: inChannels, out: dim)
        linear2 = try Linear(w.scope("linear_2"), in: dim, out: dim)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear2(silu(linear1(x))) }
}

/// `LabelEmbedding`: a table of class vectors (one extra row, the "null" class, when the model
/// was trained with label dropout for classifier-free guidance).
public struct LabelEmbedding {
    let table: Tensor

    public init(_ w: Weights, classes: Int, dim: Int, dropout: Bool) throws {
        table = try w.tensor("embedding_table.weight", shape: [classes + (dropout ? 1 : 0), dim])
    }

    public var rows: Int { table.size(0) }

    public func callAsFunction(_ labels: [Int]) -> Tensor {
        let out = Tensor(uninitialized: [labels.count, table.size(1)])
        for (i, label) in labels.enumerated() {
            check(label >= 0 && label < rows, "class label \(label) is outside 0..<\(rows)")
            out[i].copy(from: table[label])
        }
        return out
    }
}

/// `CombinedTimestepLabelEmbeddings` (DiT): timestep embedding + class embedding.
public struct CombinedTimestepLabelEmbeddings {
    let timeProj = Timesteps(channels: 256, flipSinToCos: true, downscaleFreqShift: 1)
    let timestepEmbedder: TimestepEmbedding
    public let classEmbedder: LabelEmbedding

    public init(_ w: Weights, classes: Int, dim: Int) throws {
        timestepEmbedder = try TimestepEmbedding(w.scope("timestep_embedder"), in: 256, dim: dim)
        classEmbedder = try LabelEmbedding(w.scope("class_embedder"), classes: classes, dim: dim, dropout: true)
    }

    public func callAsFunction(timesteps: [Float], labels: [Int]) -> Tensor {
        timestepEmbedder(timeProj(timesteps)) + classEmbedder(labels)
    }
}

/// `PatchEmbed`: a patchSize-strided conv to [B, tokens, dim], plus the 2-D sincos position
/// embedding of the tokens this rank holds: computed for the actual latent size (as diffusers
/// recomputes it when the size differs from the config's sample size), or, with
/// `pos_embed_max_size` (SD3), cropped from the centre of the stored max-size table.
public struct PatchEmbed {
    let proj: Tensor, projBias: Tensor
    public let patchSize: Int, dim: Int
    /// Grid of the config's sample size; positions scale to it (`base_size`).
    public let baseSize: Int
    public let interpolationScale: Float
    /// The checkpoint's [1, max·max, dim] table and max grid side, when the model crops (SD3).
    let croppedTable: (table: Tensor, maxSize: Int)?

    public init(_ w: Weights, inChannels: Int, dim: Int, patchSize: Int, sampleSize: Int, interpolationScale: Float = 1,
                posEmbedMaxSize: Int? = nil) throws {
        proj = try w.tensor("proj.weight", shape: [dim, inChannels, patchSize, patchSize])
        projBias = try w.tensor("proj.bias", shape: [dim])
        self.patchSize = patchSize
        self.dim = dim
        baseSize = sampleSize / patchSize
        self.interpolationScale = interpolationScale
        croppedTable = try posEmbedMaxSize.map { (try w.tensor("pos_embed", shape: [1, $0 * $0, dim]), $0) }
    }

    /// Position embeddings [tokens, dim] of the layout's tokens.
    func positions(_ layout: TokenLayout) throws -> Tensor {
        let (h, w) = (layout.gridHeight, layout.gridWidth)
        guard let (table, maxSize) = croppedTable else {
            return sincosPositionEmbedding2D(embedDim: dim, gridHeight: h, gridWidth: w, baseSize: Float(baseSize),
                                             interpolationScale: interpolationScale, tokens: Array(layout.tokens))
        }
        guard h <= maxSize, w <= maxSize else {
            throw WeightsError.badInput(name: "hidden_states", reason: "a \(h)×\(w) patch grid exceeds pos_embed_max_size \(maxSize); use a smaller size")
        }
        let top = (maxSize - h) / 2, left = (maxSize - w) / 2
        let out = Tensor(uninitialized: [layout.tokens.count, dim])
        for (n, t) in layout.tokens.enumerated() {
            out[n].copy(from: table[0][(top + t / w) * maxSize + left + t % w])
        }
        return out
    }

    /// latent [B, C, H, W] → [B, layout.tokens.count, dim].
    public func callAsFunction(_ latent: Tensor, layout: TokenLayout) throws -> Tensor {
        let patches = conv2d(latent, weight: proj, bias: projBias, stride: patchSize)  // [B, dim, h, w]
        let (b, h, w) = (patches.size(0), patches.size(2), patches.size(3))
        check(layout.frames == 1 && h == layout.gridHeight && w == layout.gridWidth,
              "latent grid \(h)×\(w) differs from the token layout's \(layout.frames)×\(layout.gridHeight)×\(layout.gridWidth)")
        let tokens = permuted(patches.reshaped([b, dim, h * w]), [0, 2, 1])  // [B, h·w, dim]
        let mine = layout.tokens.count == h * w ? tokens : sliceSequence(tokens, layout.tokens)
        addBroadcast(into: mine, try positions(layout))
        return mine
    }
}
