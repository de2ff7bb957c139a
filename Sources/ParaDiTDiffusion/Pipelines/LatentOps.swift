import ParaDiTTensor

// Tensor reshuffles of the pipelines, in float32 one operation at a time as torch does them.

/// torch.cat along the batch: [b_i, …] → [Σ b_i, …].
func catBatch(_ parts: [Tensor]) -> Tensor {
    let out = Tensor(uninitialized: [parts.reduce(0) { $0 + $1.size(0) }] + parts[0].shape.dropFirst())
    var at = 0
    for p in parts {
        check(Array(p.shape.dropFirst()) == Array(parts[0].shape.dropFirst()), "catBatch: \(p.shape) vs \(parts[0].shape)")
        withExtendedLifetime(p) { (out.data + at).update(from: p.data, count: p.count) }
        at += p.count
    }
    return out
}

/// uncond + scale·(cond − uncond), elementwise over [B, …] halves (each step rounded to float32).
func classifierFreeGuidance(uncond: Tensor, cond: Tensor, scale: Double) -> Tensor {
    check(uncond.shape == cond.shape, "guidance: \(uncond.shape) vs \(cond.shape)")
    let out = Tensor(uninitialized: cond.shape), g = Float(scale)
    withExtendedLifetime((uncond, cond)) {
        let (u, c, o) = (uncond.data, cond.data, out.data)
        for i in 0..<out.count { o[i] = u[i] + g * (c[i] - u[i]) }
    }
    return out
}

/// torch.cat along channels: [B, C1, …] and [B, C2, …] → [B, C1 + C2, …].
func catChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    let n = a.size(0), (pa, pb) = (a.count / n, b.count / n)
    let out = Tensor(uninitialized: [n, a.size(1) + b.size(1)] + a.shape.dropFirst(2))
    withExtendedLifetime((a, b)) {
        for i in 0..<n {
            (out.data + i * (pa + pb)).update(from: a.data + i * pa, count: pa)
            (out.data + i * (pa + pb) + pa).update(from: b.data + i * pb, count: pb)
        }
    }
    return out
}

/// x · s in float32.
func scale(_ x: Tensor, by s: Float) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime(x) { ParaDiTTensor.scale(count: x.count, x.data, by: s, out: out.data) }
    return out
}

/// Channels `range` of [B, C, H, W].
func channels(_ x: Tensor, _ range: Range<Int>) -> Tensor {
    let (b, c) = (x.size(0), x.size(1)), plane = x.count / (b * c)
    let out = Tensor(uninitialized: [b, range.count] + x.shape.dropFirst(2))
    withExtendedLifetime(x) {
        for i in 0..<b {
            (out.data + i * range.count * plane).update(from: x.data + (i * c + range.lowerBound) * plane, count: range.count * plane)
        }
    }
    return out
}

/// Flux's `_pack_latents`: [B, C, h, w] → [B, (h/2)·(w/2), C·4], each token a 2×2 patch, channel-major.
func packLatents(_ x: Tensor) -> Tensor {
    let (b, c, h, w) = (x.size(0), x.size(1), x.size(2), x.size(3))
    let out = Tensor(uninitialized: [b, (h / 2) * (w / 2), c * 4])
    withExtendedLifetime(x) {
        let (src, dst) = (x.data, out.data)
        for n in 0..<b { for i in 0..<(h / 2) { for j in 0..<(w / 2) { for ch in 0..<c { for di in 0..<2 { for dj in 0..<2 {
            dst[((n * (h / 2) + i) * (w / 2) + j) * c * 4 + ch * 4 + di * 2 + dj] = src[((n * c + ch) * h + 2 * i + di) * w + 2 * j + dj]
        } } } } } }
    }
    return out
}

/// Flux's `_unpack_latents`: [B, (h/2)·(w/2), C·4] → [B, C, h, w].
func unpackLatents(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
    let (b, c) = (x.size(0), x.size(2) / 4)
    let out = Tensor(uninitialized: [b, c, h, w])
    withExtendedLifetime(x) {
        let (src, dst) = (x.data, out.data)
        for n in 0..<b { for i in 0..<(h / 2) { for j in 0..<(w / 2) { for ch in 0..<c { for di in 0..<2 { for dj in 0..<2 {
            dst[((n * c + ch) * h + 2 * i + di) * w + 2 * j + dj] = src[((n * (h / 2) + i) * (w / 2) + j) * c * 4 + ch * 4 + di * 2 + dj]
        } } } } } }
    }
    return out
}

/// Flux's latent image ids [rows·cols, 3]: (0, row, column) of every packed token.
func fluxImageIds(rows: Int, cols: Int) -> Tensor {
    Tensor(shape: [rows * cols, 3], values: (0..<(rows * cols)).flatMap { [0, Float($0 / cols), Float($0 % cols)] })
}
