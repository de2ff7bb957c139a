import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// `config.json` of `AutoencoderKLWan` (Wan 2.1's video VAE), diffusers' defaults.
public struct AutoencoderKLWanConfig: Decodable, Sendable {
    public var baseDim = 96, zDim = 16, numResBlocks = 2, outChannels = 3
    public var decoderBaseDim: Int?
    public var dimMult = [1, 2, 4, 4]
    public var temperalDownsample = [false, true, true]
    public var attnScales: [Double] = []
    public var latentsMean: [Double] = [], latentsStd: [Double] = []
    public var isResidual = false
    public var patchSize: Int?
    public var scaleFactorTemporal = 4, scaleFactorSpatial = 8

    enum CodingKeys: String, CodingKey {
        case baseDim, zDim, numResBlocks, outChannels, decoderBaseDim, dimMult, temperalDownsample, attnScales
        case latentsMean, latentsStd, isResidual, patchSize, scaleFactorTemporal, scaleFactorSpatial
    }

    public init(from decoder: Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        baseDim = try c.value(.baseDim, default: baseDim)
        zDim = try c.value(.zDim, default: zDim)
        numResBlocks = try c.value(.numResBlocks, default: numResBlocks)
        outChannels = try c.value(.outChannels, default: outChannels)
        decoderBaseDim = try c.decodeIfPresent(Int.self, forKey: .decoderBaseDim)
        dimMult = try c.value(.dimMult, default: dimMult)
        temperalDownsample = try c.value(.temperalDownsample, default: temperalDownsample)
        attnScales = try c.value(.attnScales, default: attnScales)
        latentsMean = try c.value(.latentsMean, default: latentsMean)
        latentsStd = try c.value(.latentsStd, default: latentsStd)
        isResidual = try c.value(.isResidual, default: isResidual)
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize)
        scaleFactorTemporal = try c.value(.scaleFactorTemporal, default: scaleFactorTemporal)
        scaleFactorSpatial = try c.value(.scaleFactorSpatial, default: scaleFactorSpatial)
    }

    /// Why this port cannot decode the config, or nil.
    func unsupported() -> String? {
        if isResidual || patchSize != nil { return "is_residual/patch_size: the Wan 2.2 VAE is not supported (Wan 2.1's is)" }
        if !attnScales.isEmpty { return "attn_scales \(attnScales): only the middle block's attention is supported" }
        if dimMult.isEmpty || temperalDownsample.count != dimMult.count - 1 {
            return "temperal_downsample needs one entry per down block (\(dimMult.count - 1))"
        }
        if latentsMean.count != zDim || latentsStd.count != zDim { return "latents_mean/latents_std need z_dim (\(zDim)) values" }
        return nil
    }
}

/// `WanResidualBlock`: RMS norm, SiLU, causal 3×3×3 conv, twice, plus a 1×1×1 shortcut when the
/// width changes.
package struct WanResidualBlock {
    package let norm1: WanRMSNorm, norm2: WanRMSNorm
    package let conv1: WanCausalConv3d, conv2: WanCausalConv3d
    package let shortcut: WanCausalConv3d?

    init(_ w: Weights, in inDim: Int, out outDim: Int) throws {
        norm1 = try WanRMSNorm(w.scope("norm1"), channels: inDim, images: false)
        conv1 = try WanCausalConv3d(w.scope("conv1"), in: inDim, out: outDim, cube: 3)
        norm2 = try WanRMSNorm(w.scope("norm2"), channels: outDim, images: false)
        conv2 = try WanCausalConv3d(w.scope("conv2"), in: outDim, out: outDim, cube: 3)
        shortcut = inDim == outDim ? nil : try WanCausalConv3d(w.scope("conv_shortcut"), in: inDim, out: outDim, cube: 1)
    }

    func callAsFunction(_ x: Tensor, cache: WanFeatureCache) -> Tensor {
        let h = shortcut.map { $0(x) } ?? x
        let y = conv1(silu(norm1(x)), cache: cache)
        return conv2(silu(norm2(y)), cache: cache) + h
    }
}

/// `WanAttentionBlock`: single-head self-attention over each frame's pixels, with a residual.
package struct WanAttentionBlock {
    package let norm: WanRMSNorm
    package let toQKV: Conv2d, proj: Conv2d
    package let dim: Int

    init(_ w: Weights, dim: Int) throws {
        norm = try WanRMSNorm(w.scope("norm"), channels: dim, images: true)
        toQKV = try Conv2d(w.scope("to_qkv"), in: dim, out: 3 * dim, kernel: 1)
        proj = try Conv2d(w.scope("proj"), in: dim, out: dim, kernel: 1)
        self.dim = dim
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, c, t, h, w) = (x.size(0), x.size(1), x.size(2), x.size(3), x.size(4))
        let frames = permuted(x, [0, 2, 1, 3, 4]).reshaped([b * t, c, h, w])
        // [BT, 3C, HW] → tokens [BT, HW, 3C]: q | k | v per token.
        let qkv = permuted(toQKV(norm(frames)).reshaped([b * t, 3 * c, h * w]), [0, 2, 1])
        let out = Tensor(uninitialized: [b * t, h * w, c])
        attention(batch: b * t, heads: 1, headDim: c, q: qkv.columns(0..<c), k: qkv.columns(c..<(2 * c)),
                  v: qkv.columns((2 * c)..<(3 * c)), out: out.allColumns, scale: 1 / Float(c).squareRoot(), keyBias: nil)
        let y = proj(permuted(out, [0, 2, 1]).reshaped([b * t, c, h, w]))
        return permuted(y.reshaped([b, t, c, h, w]), [0, 2, 1, 3, 4]) + x
    }
}

/// `WanResample` upsampling: nearest ×2 and a 3×3 conv to half the width per frame; "upsample3d"
/// first doubles the frames with a causal time conv (not on the first latent frame, as diffusers).
package struct WanUpsample {
    package let conv: Conv2d
    let timeConv: WanCausalConv3d?

    init(_ w: Weights, dim: Int, temporal: Bool) throws {
        conv = try Conv2d(w.scope("resample").scope(1), in: dim, out: dim / 2, kernel: 3)
        timeConv = temporal ? try WanCausalConv3d(w.scope("time_conv"), in: dim, out: 2 * dim, kernel: (3, 1, 1),
                                                   padding: (1, 0, 0)) : nil
    }

    func callAsFunction(_ x: Tensor, cache: WanFeatureCache) -> Tensor {
        let x = temporal(x, cache: cache)
        let (b, c, t, h, w) = (x.size(0), x.size(1), x.size(2), x.size(3), x.size(4))
        let frames = permuted(x, [0, 2, 1, 3, 4]).reshaped([b * t, c, h, w])
        let y = conv(upsampleNearest2x(frames))
        return permuted(y.reshaped([b, t, y.size(1), 2 * h, 2 * w]), [0, 2, 1, 3, 4])
    }

    /// The time part: frames doubled by the causal time conv, except on the first latent frame.
    package func temporal(_ x: Tensor, cache: WanFeatureCache) -> Tensor {
        guard let timeConv else { return x }
        let slot = cache.next()
        switch cache.slots[slot] {
        case .empty:
            cache.slots[slot] = .repeated
            return x
        case let entry:
            var keep = lastFrames(x, 2)
            if keep.size(2) < 2 {
                let before: Tensor
                if case let .frames(f) = entry { before = lastFrames(f, 1) } else { before = Tensor(zeros: keep.shape) }
                keep = concatenate([before, keep], axis: 2)
            }
            let y: Tensor
            if case let .frames(f) = entry { y = timeConv(x, cache: f) } else { y = timeConv(x) }
            cache.slots[slot] = .frames(keep)
            return interleaveFrames(y)
        }
    }

    /// [B, 2C, T, H, W] → [B, C, 2T, H, W]: the first C channels are frame 2t, the others 2t + 1.
    func interleaveFrames(_ y: Tensor) -> Tensor {
        let (b, c2, t, h, w) = (y.size(0), y.size(1), y.size(2), y.size(3), y.size(4))
        return permuted(y.reshaped([b, 2, c2 / 2, t, h, w]), [0, 2, 3, 1, 4, 5]).reshaped([b, c2 / 2, 2 * t, h, w])
    }
}
