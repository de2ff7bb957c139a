import ParaDiTDiffusion
import ParaDiTTensor

// GroupNorm of a band with the whole image's statistics, in one all-gather per norm.
//
// Each rank reduces its part of every (sample, group) to S = Σx and Q = Σ(x − c)² around its own
// float32 mean c = Float(S / n), both in Double: two passes, as the serial kernel does, so Q never
// suffers the cancellation of a one-pass Σx² − n·mean². Everyone's (S, Q) are all-gathered and
// each rank combines them in rank order (bit-identical on every rank), around the float32 mean
// m = Float(ΣS / N) that the serial kernel subtracts:
//   Σ(x − m)² = Σ_r [Q_r + 2(c_r − m)(S_r − n_r c_r) + n_r (c_r − m)²]
// (exact algebra; S_r − n_r c_r is only c_r's rounding). So mean and variance equal the serial
// ones up to Double rounding, for one collective where a distributed two-pass (mean, then
// deviations) needs two. The communicator moves 4-byte words: the Doubles travel as their bit
// patterns, two words each, which a gather copies untouched.

extension BandExchange {
    /// `norm` (then SiLU when `silu`) of the band x [B, C, rows, W] with whole-image statistics.
    func groupNorm(_ norm: GroupNorm, _ x: Tensor, silu applySiLU: Bool = false) throws -> Tensor {
        let (batch, channels, rows, w) = (x.size(0), x.size(1), x.size(2), x.size(3))
        let groups = norm.groups, perGroup = channels / groups, items = batch * groups
        let local = perGroup * rows * w
        // Per rank and item (sample, group): S, Q as Doubles.
        let partial = Tensor(uninitialized: [4 * items])
        let gathered = Tensor(uninitialized: [comm.size * 4 * items])
        try withExtendedLifetime((x, partial, gathered)) {
            let out = UnsafeMutableRawPointer(partial.data)
            ThreadPool.current.parallelFor(items) { item, _ in
                let values = x.data + item * local
                let sum = blockedSum(values, local)
                out.storeBytes(of: sum, toByteOffset: 16 * item, as: Double.self)
                let squares = blockedSquaredDeviations(values, local, Float(sum / Double(local)))
                out.storeBytes(of: squares, toByteOffset: 16 * item + 8, as: Double.self)
            }
            try comm.allGather(partial.data, count: 4 * items, into: gathered.data, counts: nil)
        }
        let counts = self.rows(atHeight: rows).map { Double(perGroup * $0.count * w) }
        let stats = withExtendedLifetime(gathered) {
            (0..<items).map { combine(UnsafeRawPointer(gathered.data), item: $0, items: items, counts: counts, eps: norm.eps) }
        }
        let out = Tensor(uninitialized: x.shape)
        withExtendedLifetime((x, norm.weight, norm.bias)) {
            normalize(x.data, out: out.data, batch: batch, channels: channels, spatial: rows * w, groups: groups,
                      stats: stats, weight: norm.weight.data, bias: norm.bias.data)
        }
        if applySiLU { silu(count: out.count, out.data, out: out.data) }
        return out
    }

    /// The float32 mean and 1/√(variance + eps) of one item from every rank's (S, Q), in rank order.
    private func combine(_ all: UnsafeRawPointer, item: Int, items: Int, counts: [Double], eps: Float) -> (mean: Float, invStd: Float) {
        func partial(_ r: Int) -> (sum: Double, squares: Double) {
            let at = 16 * (r * items + item)
            return (all.load(fromByteOffset: at, as: Double.self), all.load(fromByteOffset: at + 8, as: Double.self))
        }
        let total = counts.reduce(0, +)
        let mean = Float(counts.indices.reduce(0.0) { $0 + partial($1).sum } / total)
        let m = Double(mean)
        var squares = 0.0
        for (r, n) in counts.enumerated() {
            let (s, q) = partial(r)
            let c = Double(Float(s / n))
            squares += q + 2 * (c - m) * (s - n * c) + n * (c - m) * (c - m)
        }
        return (mean, Float(1 / (squares / total + Double(eps)).squareRoot()))
    }
}

/// out = (x − mean) · invStd · weight + bias per channel plane of x [batch, channels, spatial], the
/// affine folded into one scale and shift per channel as the serial kernel does.
private func normalize(_ x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, batch: Int, channels: Int, spatial: Int,
                       groups: Int, stats: [(mean: Float, invStd: Float)], weight: UnsafePointer<Float>, bias: UnsafePointer<Float>) {
    let perGroup = channels / groups
    ThreadPool.current.parallelFor(batch * channels) { plane, _ in
        let ch = plane % channels
        let (mean, invStd) = stats[(plane / channels) * groups + ch / perGroup]
        let scale = weight[ch] * invStd, shift = bias[ch] - mean * scale
        let (src, dst) = (x + plane * spatial, out + plane * spatial)
        let sv = SIMD8<Float>(repeating: scale), bv = SIMD8<Float>(repeating: shift)
        var j = 0
        while j + 8 <= spatial { store(load(src + j) * sv + bv, dst + j); j += 8 }
        while j < spatial { dst[j] = src[j] * scale + shift; j += 1 }
    }
}

/// Σ p[i] over n elements: float32 SIMD partial sums folded into Double every 4096 elements, so
/// groups of millions of values keep float32-noise accuracy. The order of the additions is the
/// serial kernel's, so one rank reproduces its statistics bit for bit.
private func blockedSum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0, start = 0
    while start < n {
        let end = min(n, start + 4096)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var i = start
        while i + 32 <= end {
            a0 += load(p + i); a1 += load(p + i + 8); a2 += load(p + i + 16); a3 += load(p + i + 24)
            i += 32
        }
        while i + 8 <= end { a0 += load(p + i); i += 8 }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < end { s += p[i]; i += 1 }
        total += Double(s)
        start = end
    }
    return total
}

/// Σ (p[i] − c)² over n elements, blocked like `blockedSum`.
private func blockedSquaredDeviations(_ p: UnsafePointer<Float>, _ n: Int, _ c: Float) -> Double {
    var total = 0.0, start = 0
    let cv = SIMD8<Float>(repeating: c)
    while start < n {
        let end = min(n, start + 4096)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var i = start
        while i + 32 <= end {
            let d0 = load(p + i) - cv, d1 = load(p + i + 8) - cv, d2 = load(p + i + 16) - cv, d3 = load(p + i + 24) - cv
            a0 += d0 * d0; a1 += d1 * d1; a2 += d2 * d2; a3 += d3 * d3
            i += 32
        }
        while i + 8 <= end { let d = load(p + i) - cv; a0 += d * d; i += 8 }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < end { let d = p[i] - c; s += d * d; i += 1 }
        total += Double(s)
        start = end
    }
    return total
}

@_transparent private func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@_transparent private func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
