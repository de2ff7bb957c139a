import ParaDiTTensor
import ParaDiTWeights

/// `config.json` of `WanTransformer3DModel`, with diffusers' defaults (Wan 2.1 T2V 14B).
public struct WanConfig: Decodable, Sendable {
    public var patchSize: [Int]
    public var numAttentionHeads, attentionHeadDim, inChannels, outChannels, textDim, freqDim, ffnDim, numLayers: Int
    public var crossAttnNorm: Bool
    public var qkNorm: String?
    public var eps: Float
    public var imageDim, addedKvProjDim, posEmbedSeqLen: Int?
    public var ropeMaxSeqLen: Int

    enum CodingKeys: String, CodingKey {
        case patchSize, numAttentionHeads, attentionHeadDim, inChannels, outChannels, textDim, freqDim, ffnDim
        case numLayers, crossAttnNorm, qkNorm, eps, imageDim, addedKvProjDim, posEmbedSeqLen, ropeMaxSeqLen
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        patchSize = try c.value(.patchSize, default: [1, 2, 2])
        numAttentionHeads = try c.value(.numAttentionHeads, default: 40)
        attentionHeadDim = try c.value(.attentionHeadDim, default: 128)
        inChannels = try c.value(.inChannels, default: 16)
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? inChannels
        textDim = try c.value(.textDim, default: 4096)
        freqDim = try c.value(.freqDim, default: 256)
        ffnDim = try c.value(.ffnDim, default: 13824)
        numLayers = try c.value(.numLayers, default: 40)
        crossAttnNorm = try c.value(.crossAttnNorm, default: true)
        qkNorm = c.contains(.qkNorm) ? try c.decodeIfPresent(String.self, forKey: .qkNorm) : "rms_norm_across_heads"
        eps = try c.value(.eps, default: 1e-6)
        imageDim = try c.decodeIfPresent(Int.self, forKey: .imageDim)
        addedKvProjDim = try c.decodeIfPresent(Int.self, forKey: .addedKvProjDim)
        posEmbedSeqLen = try c.decodeIfPresent(Int.self, forKey: .posEmbedSeqLen)
        ropeMaxSeqLen = try c.value(.ropeMaxSeqLen, default: 1024)
    }

    public var innerDim: Int { numAttentionHeads * attentionHeadDim }
    /// RoPE channels per head for frames, rows and columns, as diffusers splits them.
    public var ropeAxes: [Int] {
        let hw = 2 * (attentionHeadDim / 6)
        return [attentionHeadDim - 2 * hw, hw, hw]
    }
}

/// The inputs of one Wan forward pass, named as diffusers' `forward()` arguments.
public struct WanInputs {
    /// [B, C, frames, height, width].
    public var hiddenStates: Tensor
    public var timestep: [Float]
    /// [B, text tokens, text_dim].
    public var encoderHiddenStates: Tensor

    public init(hiddenStates: Tensor, timestep: [Float], encoderHiddenStates: Tensor) {
        (self.hiddenStates, self.timestep, self.encoderHiddenStates) = (hiddenStates, timestep, encoderHiddenStates)
    }
}

/// `WanTransformer3DModel` (Wan 2.1 text-to-video): 3-D patches of the video latent, 3-axis RoPE over
/// frames × rows × columns, blocks of self-attention, cross-attention to the text and feed-forward,
/// all modulated by one timestep projection. The image-to-video parts are refused.
public final class WanTransformer3DModel: SingleStreamTransformer {
    public let config: WanConfig
    /// The Conv3d with stride = kernel as a linear over each patch's (channel, t, h, w) values.
    let patchEmbedding: Linear
    let timeProj: Timesteps
    let timeEmbedder: TimestepEmbedding
    let timeProjection: Linear
    let textEmbedder: PixArtAlphaTextProjection
    public let blocks: [WanTransformerBlock]
    let scaleShiftTable: Tensor
    let projOut: Linear

    public init(config c: WanConfig, weights w: Weights) throws {
        compute = w.compute
        guard c.imageDim == nil, c.addedKvProjDim == nil, c.posEmbedSeqLen == nil else {
            throw WeightsError.badConfig(path: "config.json", reason: "image_dim/added_kv_proj_dim: "
                                         + "this is an image-to-video WanTransformer3DModel; "
                                         + "ParaDiT runs the text-to-video ones")
        }
        guard c.patchSize.count == 3, c.patchSize.allSatisfy({ $0 >= 1 }) else {
            throw WeightsError.badConfig(path: "config.json",
                                         reason: "patch_size \(c.patchSize) must be three positive sizes")
        }
        guard c.qkNorm == nil || c.qkNorm == "rms_norm_across_heads" else {
            throw WeightsError.badConfig(path: "config.json",
                                         reason: "qk_norm \"\(c.qkNorm!)\" is not supported (rms_norm_across_heads)")
        }
        guard c.ropeAxes.allSatisfy({ $0 > 0 && $0 % 2 == 0 }) else {
            throw WeightsError.badConfig(path: "config.json", reason: "attention_head_dim \(c.attentionHeadDim) "
                                         + "does not split into even RoPE axes (\(c.ropeAxes))")
        }
        config = c
        let dim = c.innerDim, patch = c.patchSize.reduce(1, *)
        let conv = try w.tensor("patch_embedding.weight", shape: [dim, c.inChannels] + c.patchSize)
        patchEmbedding = Linear(weight: WeightMatrix(dense: conv.reshaped([dim, c.inChannels * patch])),
                                bias: try w.tensor("patch_embedding.bias", shape: [dim]))
        let e = w.scope("condition_embedder")
        timeProj = Timesteps(channels: c.freqDim, flipSinToCos: true, downscaleFreqShift: 0)
        timeEmbedder = try TimestepEmbedding(e.scope("time_embedder"), in: c.freqDim, dim: dim)
        timeProjection = try Linear(e.scope("time_proj"), in: dim, out: 6 * dim)
        textEmbedder = try PixArtAlphaTextProjection(e.scope("text_embedder"), in: c.textDim, hidden: dim)
        blocks = try (0..<c.numLayers).map { try WanTransformerBlock(w.scope("blocks").scope($0), config: c) }
        scaleShiftTable = try w.tensor("scale_shift_table", shape: [1, 2, dim]).reshaped([2, dim])
        projOut = try Linear(w.scope("proj_out"), in: dim, out: c.outChannels * patch)
    }

    /// State shared by every block of one forward pass.
    public struct Conditioning {
        /// The time embedding [B, dim] (the head's modulation) and its six-chunk projection [B, 6·dim].
        public var temb: Tensor, timestepProjection: Tensor
        /// The projected text [B, Lt, dim].
        public var text: Tensor
        /// RoPE tables of the tokens held here.
        public var rope: RotaryTables
    }

    public struct State: SingleStreamState {
        public var hidden: Tensor
        public var conditioning: Conditioning
    }

    public var className: String { "WanTransformer3DModel" }
    public let compute: ComputeDType
    public var blockCount: Int { blocks.count }
    public var hiddenSize: Int { config.innerDim }

    public func problem(_ inputs: WanInputs) throws -> TransformerProblem {
        let x = inputs.hiddenStates, p = config.patchSize
        try expectDim("hidden_states", "channels", x.size(1), config.inChannels)
        try expectDim("encoder_hidden_states", "channels", inputs.encoderHiddenStates.size(2), config.textDim)
        for (axis, name) in [(2, "frames"), (3, "height"), (4, "width")] where x.size(axis) % p[axis - 2] != 0 {
            throw WeightsError.badInput(name: "hidden_states",
                                        reason: "\(name) \(x.size(axis)) is not a multiple of patch_size \(p)")
        }
        let grid = TokenLayout(frames: x.size(2) / p[0], gridHeight: x.size(3) / p[1], gridWidth: x.size(4) / p[2])
        for (n, name) in [(grid.frames, "frames"), (grid.gridHeight, "rows"), (grid.gridWidth, "columns")]
        where n > config.ropeMaxSeqLen {
            throw WeightsError.badInput(name: "hidden_states",
                                        reason: "\(n) patch \(name) exceed rope_max_seq_len \(config.ropeMaxSeqLen)")
        }
        return TransformerProblem(batch: inputs.batch, heads: config.numAttentionHeads,
                                  headDim: config.attentionHeadDim, grid: grid, attentionLayers: config.numLayers)
    }

    // MARK: embed → blocks → head

    public func embed(_ inputs: WanInputs, layout: TokenLayout) throws -> State {
        let temb = timeEmbedder(timeProj(inputs.timestep))
        let conditioning = Conditioning(temb: temb, timestepProjection: timeProjection(silu(temb)),
                                        text: textEmbedder(inputs.encoderHiddenStates), rope: rope(layout))
        return State(hidden: patchEmbedding(patches(inputs.hiddenStates, layout: layout)), conditioning: conditioning)
    }

    /// The layout's tokens of the latent [B, C, F, H, W] as rows of (channel, t, h, w) patch values.
    func patches(_ x: Tensor, layout: TokenLayout) -> Tensor {
        let (b, c, p) = (x.size(0), x.size(1), config.patchSize)
        let (f, h, w) = (layout.frames, layout.gridHeight, layout.gridWidth)
        // [B, C, f, pt, h, ph, w, pw] → [B, f, h, w, C, pt, ph, pw]
        let split = x.reshaped([b, c, f, p[0], h, p[1], w, p[2]])
        let rows = permuted(split, [0, 2, 4, 6, 1, 3, 5, 7]).reshaped([b, f * h * w, c * p.reduce(1, *)])
        return layout.tokens.count == layout.totalTokens ? rows : sliceSequence(rows, layout.tokens)
    }

    /// RoPE tables of the layout's tokens from their (frame, row, column).
    func rope(_ layout: TokenLayout) -> RotaryTables {
        let ids = layout.tokens.flatMap { t -> [Float] in
            let p = layout.position(t)
            return [Float(p.frame), Float(p.row), Float(p.column)]
        }
        let (cos, sin) = ropeFrequencies(ids: Tensor(shape: [layout.tokens.count, 3], values: ids),
                                         axesDim: config.ropeAxes, theta: 10000)
        return RotaryTables(cos: cos, sin: sin)
    }

    public func modulatedInput(_ s: State) -> Tensor? {
        blocks[0].modulatedInput(s.hidden, timestepProjection: s.conditioning.timestepProjection)
    }

    public func block(_ i: Int, _ s: inout State, attention: AttentionRuntime) throws {
        let c = s.conditioning
        try blocks[i](s.hidden, timestepProjection: c.timestepProjection, text: c.text, rope: c.rope,
                      runtime: attention)
    }

    /// [B, tokens here, pt·ph·pw·out_channels].
    public func head(_ s: State) -> Tensor {
        // shift, scale = scale_shift_table + temb[:, None]
        let e = s.conditioning.temb
        let mod = Modulation(addTable(scaleShiftTable, to: concatFeatures([e, e])), dim: config.innerDim)
        return projOut(mod.modulate(layerNorm(s.hidden, eps: config.eps), scale: 1, shift: 0))
    }

    /// Tokens of whole frames → [B, C, F, H, W].
    public func output(_ tokens: Tensor, grid: TokenLayout) -> Tensor {
        let (b, c, p) = (tokens.size(0), config.outChannels, config.patchSize)
        let (f, h, w) = (tokens.size(1) / (grid.gridHeight * grid.gridWidth), grid.gridHeight, grid.gridWidth)
        // [B, f, h, w, pt, ph, pw, C] → [B, C, f, pt, h, ph, w, pw]
        let split = tokens.reshaped([b, f, h, w, p[0], p[1], p[2], c])
        return permuted(split, [0, 7, 1, 4, 2, 5, 3, 6]).reshaped([b, c, f * p[0], h * p[1], w * p[2]])
    }
}
