import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTTensor

/// Patch-parallel VAE decoding (DistVAE) with the serial decoder's result: the latent rows are
/// split over the ranks of a communicator (balanced: band heights differ by at most one), and each
/// rank runs the serial decoder's own modules and weights on its band, with the exchanges of
/// `BandExchange` wherever a layer looks beyond its band:
/// - every 3×3 conv (conv_in, the resnets', each upsampler's after its nearest ×2, conv_out) frames
///   the band with one halo row from each neighbour at that conv's resolution and width;
/// - every GroupNorm all-gathers per-group partial statistics (two Doubles per sample and group);
/// - the mid-block attention all-gathers the K and V of every pixel (queries stay local);
/// - the image bands are all-gathered at the end, so every rank returns the whole image.
extension AutoencoderKL {
    /// `decode(latents:scaling:)` split over the ranks of `comm`. Every rank passes the same
    /// latents [B, latent_channels, h, w] and gets the whole image [B, out_channels, 8h, 8w]
    /// (for the usual 8× VAE). Throws `ParallelError.unsupported` when `comm` has more ranks than
    /// the latents have rows, the same message on every rank.
    public func decode(latents: Tensor, scaling: LatentScaling = .divide, comm: Communicator) throws -> Tensor {
        try decodeUnscaled(unscale(latents, scaling: scaling), comm: comm)
    }

    /// `decodeUnscaled(_:)` split over the ranks of `comm`, for z already in the VAE's space.
    public func decodeUnscaled(_ z: Tensor, comm: Communicator) throws -> Tensor {
        try checkLatents(z, name: "z")
        let bands = try BandExchange(latentHeight: z.size(2), comm: comm)
        let band = bands.band(ofLatents: z)
        let h = postQuantConv.map { $0(band) } ?? band
        return try bands.gatherRows(PatchParallelDecoder(decoder: decoder, bands: bands).decode(h))
    }
}

/// The serial `Decoder`'s modules composed as it composes them, each layer on this rank's band.
struct PatchParallelDecoder {
    let decoder: Decoder
    let bands: BandExchange

    /// z: the band [B, latent_channels, rows, w] → the image band [B, out_channels, 8·rows, 8w].
    func decode(_ z: Tensor) throws -> Tensor {
        var h = try midBlock(decoder.midBlock, bands.conv(decoder.convIn, z))
        for block in decoder.upBlocks { h = try upBlock(block, h) }
        return try bands.conv(decoder.convOut, bands.groupNorm(decoder.convNormOut, h, silu: true))
    }

    func resnet(_ block: ResnetBlock2D, _ x: Tensor) throws -> Tensor {
        let inner = try bands.conv(block.conv1, bands.groupNorm(block.norm1, x, silu: true))
        let h = try bands.conv(block.conv2, bands.groupNorm(block.norm2, inner, silu: true))
        let shortcut = block.convShortcut.map { $0(x) } ?? x
        addInPlace(h, shortcut)
        return h
    }

    func midBlock(_ block: UNetMidBlock2D, _ x: Tensor) throws -> Tensor {
        var h = try resnet(block.resnets[0], x)
        if let attention = block.attention { h = try selfAttention(attention, h) }
        return try resnet(block.resnets[1], h)
    }

    /// The band's queries attend to every pixel's key: q|k|v are projected locally, then the K|V
    /// columns of every rank's tokens (its rows, row-major, so rank order is token order) are
    /// all-gathered into [B, all tokens, 2C].
    func selfAttention(_ block: Attention, _ x: Tensor) throws -> Tensor {
        let (batch, c) = (x.size(0), block.channels)
        let tokens = bands.rows(atHeight: x.size(2)).map { $0.count * x.size(3) }
        let mine = tokens[bands.comm.rank], all = tokens.reduce(0, +)
        let qkv = block.projections(try bands.groupNorm(block.groupNorm, x))
        let localKV = Tensor(uninitialized: [batch, mine, 2 * c])
        copy(qkv.columns(c..<(3 * c)), into: localKV.allColumns)
        let kv = try bands.allGather(localKV, outer: batch, lengths: tokens.map { $0 * 2 * c }).reshaped([batch, all, 2 * c])
        let attended = Tensor(uninitialized: [batch, mine, c])
        attention(batch: batch, heads: 1, headDim: c, q: qkv.columns(0..<c), k: kv.columns(0..<c), v: kv.columns(c..<(2 * c)),
                  out: attended.allColumns, scale: block.scale)
        return block.output(attended, residual: x)
    }

    func upBlock(_ block: UpDecoderBlock2D, _ x: Tensor) throws -> Tensor {
        var h = x
        for resnet in block.resnets { h = try self.resnet(resnet, h) }
        guard let upsampler = block.upsampler else { return h }
        return try bands.conv(upsampler.conv, upsampleNearest(h, factor: 2))
    }
}
