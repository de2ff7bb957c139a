import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTTensor

/// Patch-parallel decoding of Wan's video VAE with the serial result: every frame is cut into the
/// same horizontal bands of latent rows, one per rank, and each rank runs the serial decoder's
/// modules on its band, latent frame by latent frame, keeping the causal convolutions' feature
/// cache of its own band (the cached frames carry their halo rows, so a cached frame reads its
/// neighbours as the live one does). Exchanges, through `BandExchange`:
/// - every 3×3(×3) convolution frames the band with one halo row of every channel and frame from
///   each neighbour (zeros at the image border); time and 1×1 convolutions and the RMS norms are local;
/// - the middle attention all-gathers every pixel's K and V per frame (queries stay local);
/// - the frames' bands are all-gathered at the end, so every rank returns the whole video.
extension AutoencoderKLWan {
    /// `decode(latents:)` split over the ranks of `comm` (at most one rank per latent row).
    public func decode(latents: Tensor, comm: Communicator) throws -> Tensor {
        let z = try prepared(latents)
        let bands = try BandExchange(latentHeight: z.size(3), comm: comm)
        let x = postQuantConv(slice(z, axis: 3, bands.latentRows[comm.rank]))
        let cache = WanFeatureCache(), band = WanBandDecoder(decoder: decoder, bands: bands)
        let chunks = try (0..<x.size(2)).map { try band.decode(slice(x, axis: 2, $0..<($0 + 1)), cache: cache) }
        let video = concatenate(chunks, axis: 2)
        let (b, c, f, rows, w) = (video.size(0), video.size(1), video.size(2), video.size(3), video.size(4))
        let whole = try bands.gatherRows(video.reshaped([b, c * f, rows, w]))
        return clamped(whole.reshaped([b, c, f, whole.size(2), w]))
    }
}

/// The serial `WanDecoder3d` composed as it composes itself, each layer on this rank's band.
struct WanBandDecoder {
    let decoder: WanDecoder3d
    let bands: BandExchange

    /// One latent frame's band [B, z, 1, rows, w] → its frames' bands [B, 3, 1 or 4, 8·rows, 8w].
    func decode(_ x: Tensor, cache: WanFeatureCache) throws -> Tensor {
        cache.cursor = 0
        var x = try conv(decoder.convIn, x, cache: cache)
        x = try resnet(decoder.mid.0, x, cache: cache)
        x = try resnet(decoder.mid.2, attention(decoder.mid.1, x), cache: cache)
        for block in decoder.upBlocks {
            for r in block.resnets { x = try resnet(r, x, cache: cache) }
            if let upsampler = block.upsampler { x = try upsample(upsampler, x, cache: cache) }
        }
        return try conv(decoder.convOut, silu(decoder.normOut(x)), cache: cache)
    }

    /// A causal convolution on the band: with halo rows and padding only along the width when it
    /// looks at neighbouring rows.
    func conv(_ c: WanCausalConv3d, _ x: Tensor, cache: WanFeatureCache) throws -> Tensor {
        guard c.padding.h > 0 else { return c(x, cache: cache) }
        let (b, ch, t, rows, w) = (x.size(0), x.size(1), x.size(2), x.size(3), x.size(4))
        let framed = try bands.withHalo(x.reshaped([b, ch * t, rows, w])).reshaped([b, ch, t, rows + 2, w])
        return c(framed, cache: cache, spatial: (0, c.padding.w))
    }

    func resnet(_ r: WanResidualBlock, _ x: Tensor, cache: WanFeatureCache) throws -> Tensor {
        let h = r.shortcut.map { $0(x) } ?? x
        let y = try conv(r.conv1, silu(r.norm1(x)), cache: cache)
        return try conv(r.conv2, silu(r.norm2(y)), cache: cache) + h
    }

    /// Each frame's band queries every pixel of its frame: K|V of every rank's rows are all-gathered.
    func attention(_ a: WanAttentionBlock, _ x: Tensor) throws -> Tensor {
        let (b, c, t, rows, w) = (x.size(0), x.size(1), x.size(2), x.size(3), x.size(4))
        let frames = permuted(x, [0, 2, 1, 3, 4]).reshaped([b * t, c, rows, w])
        let qkv = permuted(a.toQKV(a.norm(frames)).reshaped([b * t, 3 * c, rows * w]), [0, 2, 1])
        let tokens = bands.rows(atHeight: rows).map { $0.count * w }
        let (mine, all) = (tokens[bands.comm.rank], tokens.reduce(0, +))
        let localKV = Tensor(uninitialized: [b * t, mine, 2 * c])
        copy(qkv.columns(c..<(3 * c)), into: localKV.allColumns)
        let kv = try bands.allGather(localKV, outer: b * t, lengths: tokens.map { $0 * 2 * c }).reshaped([b * t, all, 2 * c])
        let out = Tensor(uninitialized: [b * t, mine, c])
        ParaDiTTensor.attention(batch: b * t, heads: 1, headDim: c, q: qkv.columns(0..<c), k: kv.columns(0..<c),
                                v: kv.columns(c..<(2 * c)), out: out.allColumns, scale: 1 / Float(c).squareRoot(), keyBias: nil)
        let y = a.proj(permuted(out, [0, 2, 1]).reshaped([b * t, c, rows, w]))
        return permuted(y.reshaped([b, t, c, rows, w]), [0, 2, 1, 3, 4]) + x
    }

    func upsample(_ u: WanUpsample, _ x: Tensor, cache: WanFeatureCache) throws -> Tensor {
        let x = u.temporal(x, cache: cache)
        let (b, c, t, rows, w) = (x.size(0), x.size(1), x.size(2), x.size(3), x.size(4))
        let frames = permuted(x, [0, 2, 1, 3, 4]).reshaped([b * t, c, rows, w])
        let y = try bands.conv(u.conv, upsampleNearest2x(frames))
        return permuted(y.reshaped([b, t, y.size(1), 2 * rows, 2 * w]), [0, 2, 1, 3, 4])
    }
}

extension TextToImagePipeline {
    /// A video pipeline's `decodeVideo` split over the ranks of `comm`.
    public func decodeVideo(_ latents: Tensor, comm: Communicator) throws -> Tensor {
        guard let videoVAE else { return try decodeVideo(latents) }
        return try videoVAE.decode(latents: latents, comm: comm)
    }
}
