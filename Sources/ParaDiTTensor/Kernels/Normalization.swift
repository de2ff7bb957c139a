import Foundation

// LayerNorm, RMSNorm and GroupNorm. Statistics are two-pass (mean, then squared deviations) with
// four SIMD accumulators per pass; long reductions fold into Double every 4096 elements so a
// 512×128×128 group keeps float32-noise accuracy.

/// Σ p[i] over n elements.
@inline(__always)
func sumBlocks(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0, start = 0
    while start < n {
        let end = min(n, start + 4096)
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = start
        while i + 32 <= end {
            a0 += load8(p + i); a1 += load8(p + i + 8); a2 += load8(p + i + 16); a3 += load8(p + i + 24)
            i += 32
        }
        while i + 8 <= end { a0 += load8(p + i); i += 8 }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < end { s += p[i]; i += 1 }
        total += Double(s)
        start = end
    }
    return total
}

/// Σ (p[i] − c)² over n elements.
@inline(__always)
func sumSquaredDeviations(_ p: UnsafePointer<Float>, _ n: Int, _ c: Float) -> Double {
    var total = 0.0, start = 0
    let cv = F8(repeating: c)
    while start < n {
        let end = min(n, start + 4096)
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var i = start
        while i + 32 <= end {
            let d0 = load8(p + i) - cv, d1 = load8(p + i + 8) - cv
            let d2 = load8(p + i + 16) - cv, d3 = load8(p + i + 24) - cv
            a0 += d0 * d0; a1 += d1 * d1; a2 += d2 * d2; a3 += d3 * d3
            i += 32
        }
        while i + 8 <= end { let d = load8(p + i) - cv; a0 += d * d; i += 8 }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < end { let d = p[i] - c; s += d * d; i += 1 }
        total += Double(s)
        start = end
    }
    return total
}

/// out[j] = (x[j] − mean) · invStd · w[j] + b[j] over n elements (w, b optional).
@inline(__always)
func normalizeRow(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int, mean: Float,
                  invStd: Float, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?) {
    let m = F8(repeating: mean), s = F8(repeating: invStd)
    var j = 0
    while j + 8 <= n {
        var v = (load8(x + j) - m) * s
        if let weight { v *= load8(weight + j) }
        if let bias { v += load8(bias + j) }
        store8(v, out + j)
        j += 8
    }
    while j < n {
        var v = (x[j] - mean) * invStd
        if let weight { v *= weight[j] }
        if let bias { v += bias[j] }
        out[j] = v
        j += 1
    }
}

// MARK: - LayerNorm

/// LayerNorm over the last dim of x: [rows, dim]; weight and bias [dim] are optional
/// (`elementwise_affine=False` models pass neither).
public func layerNorm(rows: Int, dim: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>?,
                      bias: UnsafePointer<Float>?, eps: Float, out: UnsafeMutablePointer<Float>,
                      pool: ThreadPool = .current) {
    pool.parallelChunks(rows, minChunk: max(1, elementwiseGrain / max(dim, 1))) { range, _ in
        for r in range {
            let xr = x + r * dim
            let mean = Float(sumBlocks(xr, dim) / Double(dim))
            let variance = sumSquaredDeviations(xr, dim, mean) / Double(dim)
            let invStd = Float(1 / (variance + Double(eps)).squareRoot())
            normalizeRow(xr, out + r * dim, dim, mean: mean, invStd: invStd, weight: weight, bias: bias)
        }
    }
}

/// Reference for `layerNorm`, in Double.
public func layerNormReference(rows: Int, dim: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>?,
                               bias: UnsafePointer<Float>?, eps: Float, out: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        let xr = x + r * dim
        var mean = 0.0
        for j in 0..<dim { mean += Double(xr[j]) }
        mean /= Double(dim)
        var variance = 0.0
        for j in 0..<dim { variance += (Double(xr[j]) - mean) * (Double(xr[j]) - mean) }
        variance /= Double(dim)
        for j in 0..<dim {
            var v = (Double(xr[j]) - mean) / (variance + Double(eps)).squareRoot()
            if let weight { v *= Double(weight[j]) }
            if let bias { v += Double(bias[j]) }
            out[r * dim + j] = Float(v)
        }
    }
}

// MARK: - RMSNorm

/// RMSNorm over the last dim of x: [rows, dim]: x / √(mean(x²) + eps) · weight.
public func rmsNorm(rows: Int, dim: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>?,
                    eps: Float, out: UnsafeMutablePointer<Float>, pool: ThreadPool = .current) {
    pool.parallelChunks(rows, minChunk: max(1, elementwiseGrain / max(dim, 1))) { range, _ in
        for r in range {
            let xr = x + r * dim
            let meanSquare = sumSquaredDeviations(xr, dim, 0) / Double(dim)
            let invRms = Float(1 / (meanSquare + Double(eps)).squareRoot())
            normalizeRow(xr, out + r * dim, dim, mean: 0, invStd: invRms, weight: weight, bias: nil)
        }
    }
}

/// Reference for `rmsNorm`, in Double.
public func rmsNormReference(rows: Int, dim: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>?,
                             eps: Float, out: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        var ms = 0.0
        for j in 0..<dim { ms += Double(x[r * dim + j]) * Double(x[r * dim + j]) }
        let inv = 1 / (ms / Double(dim) + Double(eps)).squareRoot()
        for j in 0..<dim { out[r * dim + j] = Float(Double(x[r * dim + j]) * inv * Double(weight?[j] ?? 1)) }
    }
}

// MARK: - GroupNorm

/// GroupNorm of x: [batch, channels, spatial] (spatial = H·W) in `groups` groups of consecutive
/// channels, with per-channel affine weight and bias [channels] (optional).
public func groupNorm(batch: Int, channels: Int, spatial: Int, groups: Int, x: UnsafePointer<Float>,
                      weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Float,
                      out: UnsafeMutablePointer<Float>, pool: ThreadPool = .current) {
    check(groups > 0 && channels % groups == 0, "groupNorm: \(channels) channels do not split into \(groups) groups")
    let perGroup = channels / groups
    pool.parallelFor(batch * groups) { item, _ in
        let n = item / groups, g = item % groups
        let base = (n * channels + g * perGroup) * spatial
        let count = perGroup * spatial
        let mean = Float(sumBlocks(x + base, count) / Double(count))
        let variance = sumSquaredDeviations(x + base, count, mean) / Double(count)
        let invStd = Float(1 / (variance + Double(eps)).squareRoot())
        for c in 0..<perGroup {
            let ch = g * perGroup + c
            normalizePlane(x + base + c * spatial, out + base + c * spatial, spatial, mean: mean, invStd: invStd,
                           weight: weight?[ch] ?? 1, bias: bias?[ch] ?? 0)
        }
    }
}

/// One channel plane: out = x · w + b with the channel's affine folded into w = weight · invStd
/// and b = bias − mean · w.
@inline(__always)
func normalizePlane(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int, mean: Float, invStd: Float,
                    weight: Float, bias: Float) {
    let w = weight * invStd, b = bias - mean * w
    let wv = F8(repeating: w), bv = F8(repeating: b)
    var j = 0
    while j + 8 <= n { store8(load8(x + j) * wv + bv, out + j); j += 8 }
    while j < n { out[j] = x[j] * w + b; j += 1 }
}

/// Per (sample, group) of x [batch, channels, ...]: S = Σx and Q = Σ(x − c)² around the group's
/// own float32 mean c = Float(S / n), both in Double with the serial kernel's order of additions
/// (statistics a band of rows contributes to a GroupNorm over the whole image).
public func groupNormPartials(_ x: Tensor, groups: Int, pool: ThreadPool = .current) -> [(sum: Double, squares: Double)] {
    check(x.rank >= 2 && groups > 0 && x.size(1) % groups == 0, "groupNormPartials: \(x.shape) in \(groups) groups")
    let items = x.size(0) * groups, n = x.count / items
    var partials = [(sum: Double, squares: Double)](repeating: (0, 0), count: items)
    withExtendedLifetime(x) {
        partials.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            pool.parallelFor(items) { item, _ in
                let values = x.data + item * n
                let sum = sumBlocks(values, n)
                base[item] = (sum, sumSquaredDeviations(values, n, Float(sum / Double(n))))
            }
        }
    }
    return partials
}

/// GroupNorm of x [batch, channels, ...] with given statistics per (sample, group), as the
/// serial kernel applies its own.
public func groupNorm(_ x: Tensor, groups: Int, stats: [(mean: Float, invStd: Float)], weight: Tensor?, bias: Tensor?) -> Tensor {
    let (batch, channels) = (x.size(0), x.size(1)), perGroup = channels / groups
    check(groups > 0 && channels % groups == 0 && stats.count == batch * groups, "groupNorm: \(x.shape), \(stats.count) statistics")
    let out = Tensor(uninitialized: x.shape), spatial = x.count / (batch * channels)
    withExtendedLifetime((x, weight, bias)) {
        ThreadPool.current.parallelFor(batch * channels) { plane, _ in
            let ch = plane % channels
            let (mean, invStd) = stats[(plane / channels) * groups + ch / perGroup]
            normalizePlane(x.data + plane * spatial, out.data + plane * spatial, spatial, mean: mean, invStd: invStd,
                           weight: weight?.data[ch] ?? 1, bias: bias?.data[ch] ?? 0)
        }
    }
    return out
}

/// Reference for `groupNorm`, in Double.
public func groupNormReference(batch: Int, channels: Int, spatial: Int, groups: Int, x: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Float,
                               out: UnsafeMutablePointer<Float>) {
    let perGroup = channels / groups
    for n in 0..<batch {
        for g in 0..<groups {
            let base = (n * channels + g * perGroup) * spatial, count = perGroup * spatial
            var mean = 0.0
            for i in 0..<count { mean += Double(x[base + i]) }
            mean /= Double(count)
            var variance = 0.0
            for i in 0..<count { variance += (Double(x[base + i]) - mean) * (Double(x[base + i]) - mean) }
            variance /= Double(count)
            for i in 0..<count {
                let ch = g * perGroup + i / spatial
                let v = (Double(x[base + i]) - mean) / (variance + Double(eps)).squareRoot()
                out[base + i] = Float(v * Double(weight?[ch] ?? 1) + Double(bias?[ch] ?? 0))
            }
        }
    }
}

// MARK: - Tensor-level

/// LayerNorm over the last dim.
public func layerNorm(_ x: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float) -> Tensor {
    let dim = x.size(-1)
    check(weight.map { $0.count == dim } ?? true && bias.map { $0.count == dim } ?? true,
          "layerNorm: weight/bias do not match the last dim of \(x.shape)")
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime((x, weight, bias)) {
        layerNorm(rows: x.count / max(dim, 1), dim: dim, x: x.data, weight: weight?.data, bias: bias?.data,
                  eps: eps, out: out.data)
    }
    return out
}

/// RMSNorm over the last dim.
public func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) -> Tensor {
    let dim = x.size(-1)
    check(weight.map { $0.count == dim } ?? true, "rmsNorm: weight does not match the last dim of \(x.shape)")
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime((x, weight)) {
        rmsNorm(rows: x.count / max(dim, 1), dim: dim, x: x.data, weight: weight?.data, eps: eps, out: out.data)
    }
    return out
}

/// GroupNorm of x: [N, C, H, W].
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
    check(x.rank == 4, "groupNorm needs [N, C, H, W], got \(x.shape)")
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime((x, weight, bias)) {
        groupNorm(batch: x.size(0), channels: x.size(1), spatial: x.size(2) * x.size(3), groups: groups,
                  x: x.data, weight: weight?.data, bias: bias?.data, eps: eps, out: out.data)
    }
    return out
}

/// In place: RMS-normalises each head of every row of a view of heads·headDim columns (qk-norm
/// on the q or k columns of a fused projection), weight [headDim].
public func rmsNormHeads(_ x: StridedView, headDim: Int, weight: Tensor, eps: Float, pool: ThreadPool = .current) {
    check(headDim > 0 && x.width % headDim == 0 && weight.count == headDim,
          "rmsNormHeads: \(x.width) columns are not heads of \(headDim), weight \(weight.shape)")
    let heads = x.width / headDim, p = x.data, ld = x.rowStride
    withExtendedLifetime((x, weight)) {
        pool.parallelChunks(x.rows, minChunk: 16) { range, _ in
            // Nested inside the pool's work: runs on this thread.
            for t in range { rmsNorm(rows: heads, dim: headDim, x: p + t * ld, weight: weight.data, eps: eps, out: p + t * ld) }
        }
    }
}
