import ParaDiTTensor
import ParaDiTWeights

/// diffusers `Decoder` (group norm variant): conv_in to the widest channels, the mid block, the up
/// blocks from widest to narrowest (each but the last doubling the resolution), then
/// GroupNorm, SiLU and conv_out to the image channels.
package struct Decoder {
    package let convIn: Conv2d
    package let midBlock: UNetMidBlock2D
    package let upBlocks: [UpDecoderBlock2D]
    package let convNormOut: GroupNorm
    package let convOut: Conv2d

    /// The VAE's GroupNorm epsilon, fixed in diffusers' Decoder.
    static let eps: Float = 1e-6

    init(_ w: Weights, config: AutoencoderKLConfig) throws {
        let widths = Array(config.blockOutChannels.reversed())
        let groups = config.normNumGroups
        convIn = try Conv2d(w.scope("conv_in"), in: config.latentChannels, out: widths[0], kernel: 3)
        midBlock = try UNetMidBlock2D(w.scope("mid_block"), channels: widths[0], addAttention: config.midBlockAddAttention,
                                      groups: groups, eps: Self.eps)
        upBlocks = try widths.indices.map { i in
            try UpDecoderBlock2D(w.scope("up_blocks").scope(i), inChannels: widths[max(i - 1, 0)], outChannels: widths[i],
                                 layers: config.layersPerBlock + 1, upsample: i < widths.count - 1,
                                 groups: groups, eps: Self.eps)
        }
        convNormOut = try GroupNorm(w.scope("conv_norm_out"), channels: widths.last!, groups: groups, eps: Self.eps)
        convOut = try Conv2d(w.scope("conv_out"), in: widths.last!, out: config.outChannels, kernel: 3)
    }

    /// z: [B, latent_channels, h, w] → [B, out_channels, h·2^(blocks−1), w·2^(blocks−1)].
    func callAsFunction(_ z: Tensor) -> Tensor {
        var h = midBlock(convIn(z))
        for block in upBlocks { h = block(h) }
        return convOut(convNormOut(h, silu: true))
    }
}
