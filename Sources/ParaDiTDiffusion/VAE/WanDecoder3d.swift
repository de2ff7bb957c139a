import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// `WanDecoder3d` of Wan 2.1's VAE: causal conv in, a middle block (residual, attention,
/// residual), up blocks of residual blocks each ending in a ×2 spatial (and, where the encoder
/// halved time, ×2 temporal) upsampler, RMS norm, SiLU, causal conv out.
package struct WanDecoder3d {
    package let convIn: WanCausalConv3d
    package let mid: (WanResidualBlock, WanAttentionBlock, WanResidualBlock)
    package let upBlocks: [(resnets: [WanResidualBlock], upsampler: WanUpsample?)]
    package let normOut: WanRMSNorm
    package let convOut: WanCausalConv3d

    init(_ w: Weights, config c: AutoencoderKLWanConfig) throws {
        let base = c.decoderBaseDim ?? c.baseDim
        let dims = ([c.dimMult.last!] + c.dimMult.reversed()).map { base * $0 }
        let temporalUp = Array(c.temperalDownsample.reversed())
        convIn = try WanCausalConv3d(w.scope("conv_in"), in: c.zDim, out: dims[0], cube: 3)
        let m = w.scope("mid_block")
        mid = (try WanResidualBlock(m.scope("resnets").scope(0), in: dims[0], out: dims[0]),
               try WanAttentionBlock(m.scope("attentions").scope(0), dim: dims[0]),
               try WanResidualBlock(m.scope("resnets").scope(1), in: dims[0], out: dims[0]))
        upBlocks = try (0..<(dims.count - 1)).map { i in
            let u = w.scope("up_blocks").scope(i)
            // Each upsampler halves the width the next block starts from.
            var inDim = i > 0 ? dims[i] / 2 : dims[i]
            let resnets = try (0...c.numResBlocks).map { j -> WanResidualBlock in
                defer { inDim = dims[i + 1] }
                return try WanResidualBlock(u.scope("resnets").scope(j), in: inDim, out: dims[i + 1])
            }
            let up = i != c.dimMult.count - 1
            let upsampler = up ? try WanUpsample(u.scope("upsamplers").scope(0), dim: dims[i + 1], temporal: temporalUp[i]) : nil
            return (resnets, upsampler)
        }
        normOut = try WanRMSNorm(w.scope("norm_out"), channels: dims.last!, images: false)
        convOut = try WanCausalConv3d(w.scope("conv_out"), in: dims.last!, out: c.outChannels, cube: 3)
    }

    /// One latent frame's chunk [B, z, 1, h, w] → its frames [B, 3, 1 or 4, H, W].
    func callAsFunction(_ x: Tensor, cache: WanFeatureCache) -> Tensor {
        cache.cursor = 0
        var x = convIn(x, cache: cache)
        x = mid.0(x, cache: cache)
        x = mid.2(mid.1(x), cache: cache)
        for block in upBlocks {
            for resnet in block.resnets { x = resnet(x, cache: cache) }
            if let upsampler = block.upsampler { x = upsampler(x, cache: cache) }
        }
        return convOut(silu(normOut(x)), cache: cache)
    }
}

/// `AutoencoderKLWan`'s decoder (Wan 2.1): latents are unscaled as WanPipeline does
/// (z / (1/std) + mean per channel), passed through post_quant_conv, then decoded one latent frame
/// at a time with the causal convolutions' feature cache, as diffusers' `_decode` does; frames are
/// clamped to [−1, 1]. The encoder's tensors are left unread.
public struct AutoencoderKLWan {
    public let config: AutoencoderKLWanConfig
    package let postQuantConv: WanCausalConv3d
    package let decoder: WanDecoder3d

    public static func load(directory: String) throws -> AutoencoderKLWan {
        let file = try ConfigFile(directory: directory)
        guard file.className == "AutoencoderKLWan" else {
            throw WeightsError.badConfig(path: file.path, reason: "_class_name is \(file.className), expected AutoencoderKLWan")
        }
        let config = try file.decode(AutoencoderKLWanConfig.self)
        let weights = Weights(checkpoint: try Checkpoint(directory: directory))
        let model = try AutoencoderKLWan(config: config, weights: weights)
        try AutoencoderKL.checkDecoderUsedAll(weights)
        return model
    }

    public init(config: AutoencoderKLWanConfig, weights w: Weights) throws {
        if let reason = config.unsupported() { throw WeightsError.badConfig(path: "config.json", reason: reason) }
        self.config = config
        postQuantConv = try WanCausalConv3d(w.scope("post_quant_conv"), in: config.zDim, out: config.zDim, cube: 1)
        decoder = try WanDecoder3d(w.scope("decoder"), config: config)
    }

    /// Pipeline latents [B, z, F, h, w] → video [B, 3, 4(F − 1) + 1, 8h, 8w] in [−1, 1].
    public func decode(latents: Tensor) throws -> Tensor {
        let z = try prepared(latents)
        let x = postQuantConv(z)
        let cache = WanFeatureCache()
        let chunks = (0..<x.size(2)).map { decoder(slice(x, axis: 2, $0..<($0 + 1)), cache: cache) }
        return clamped(concatenate(chunks, axis: 2))
    }

    /// Checks pipeline latents [B, z, F, h, w] and takes them to the VAE's space.
    package func prepared(_ latents: Tensor) throws -> Tensor {
        guard latents.rank == 5, latents.size(1) == config.zDim else {
            throw WeightsError.badInput(name: "latents", reason: "has shape \(latents.shape), expected [B, \(config.zDim), F, h, w]")
        }
        return unscaled(latents)
    }

    /// The decoded video clamped to [−1, 1], in place.
    package func clamped(_ video: Tensor) -> Tensor {
        let o = video.data
        for i in 0..<video.count { o[i] = min(max(o[i], -1), 1) }
        return video
    }

    /// latents / (1/std) + mean, per channel in float32 as WanPipeline computes it.
    func unscaled(_ latents: Tensor) -> Tensor {
        let out = latents.copy(), c = config.zDim, inner = latents.count / (latents.size(0) * c)
        let o = out.data
        for n in 0..<latents.size(0) { for ch in 0..<c {
            let inverse = 1 / Float(config.latentsStd[ch]), mean = Float(config.latentsMean[ch])
            for p in 0..<inner { let i = (n * c + ch) * inner + p; o[i] = o[i] / inverse + mean }
        } }
        return out
    }
}
