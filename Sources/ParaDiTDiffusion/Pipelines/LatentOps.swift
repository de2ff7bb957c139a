import ParaDiTTensor

// Tensor reshuffles of the pipelines, in float32 one operation at a time as torch does them.

/// torch.cat along the batch: [b_i, …] → [Σ b_i, …].
func catBatch(_ parts: [Tensor]) -> Tensor { concatenate(parts, axis: 0) }

/// uncond + scale·(cond − uncond), elementwise over [B, …] halves (each step rounded to float32).
func classifierFreeGuidance(uncond: Tensor, cond: Tensor, scale: Double) -> Tensor {
    guidanceCombine(uncond: uncond, cond: cond, scale: Float(scale))
}

/// torch.cat along channels: [B, C1, …] and [B, C2, …] → [B, C1 + C2, …].
func catChannels(_ a: Tensor, _ b: Tensor) -> Tensor { concatenate([a, b], axis: 1) }

/// x · s in float32.
func scale(_ x: Tensor, by s: Float) -> Tensor { scaled(x, by: s) }

/// Channels `range` of [B, C, H, W].
func channels(_ x: Tensor, _ range: Range<Int>) -> Tensor { slice(x, axis: 1, range) }

/// Flux's `_pack_latents`: [B, C, h, w] → [B, (h/2)·(w/2), C·4], each token a 2×2 patch, channel-major.
func packLatents(_ x: Tensor) -> Tensor {
    let (b, c, h, w) = (x.size(0), x.size(1), x.size(2), x.size(3))
    // [B, C, h/2, 2, w/2, 2] → [B, h/2, w/2, C, 2, 2]
    return permuted(x.reshaped([b, c, h / 2, 2, w / 2, 2]), [0, 2, 4, 1, 3, 5]).reshaped([b, (h / 2) * (w / 2), c * 4])
}

/// Flux's `_unpack_latents`: [B, (h/2)·(w/2), C·4] → [B, C, h, w].
func unpackLatents(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
    let (b, c) = (x.size(0), x.size(2) / 4)
    // [B, h/2, w/2, C, 2, 2] → [B, C, h/2, 2, w/2, 2]
    return permuted(x.reshaped([b, h / 2, w / 2, c, 2, 2]), [0, 3, 1, 4, 2, 5]).reshaped([b, c, h, w])
}

/// Flux's latent image ids [rows·cols, 3]: (0, row, column) of every packed token.
func fluxImageIds(rows: Int, cols: Int) -> Tensor {
    Tensor(shape: [rows * cols, 3], values: (0..<(rows * cols)).flatMap { [0, Float($0 / cols), Float($0 % cols)] })
}
