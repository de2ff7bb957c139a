// conv2d as im2col + GEMM, and nearest-neighbour upsampling (the VAE decoder's building blocks).
// Layouts are NCHW as in torch; weight [out, in, kh, kw].

/// Geometry of a 2-D convolution.
public struct Conv2DShape: Sendable, Equatable {
    public var batch, inChannels, height, width: Int
    public var outChannels, kernelH, kernelW: Int
    public var strideH = 1, strideW = 1, padH = 0, padW = 0

    public init(batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int, kernelH: Int, kernelW: Int,
                strideH: Int = 1, strideW: Int = 1, padH: Int = 0, padW: Int = 0) {
        (self.batch, self.inChannels, self.height, self.width) = (batch, inChannels, height, width)
        (self.outChannels, self.kernelH, self.kernelW) = (outChannels, kernelH, kernelW)
        (self.strideH, self.strideW, self.padH, self.padW) = (strideH, strideW, padH, padW)
    }

    public var outHeight: Int { (height + 2 * padH - kernelH) / strideH + 1 }
    public var outWidth: Int { (width + 2 * padW - kernelW) / strideW + 1 }
    var patch: Int { inChannels * kernelH * kernelW }
}

/// Caps the im2col buffer (floats) so a 1024-px VAE layer never needs gigabytes of it.
let im2colBudget = 1 << 22

/// out [batch, outChannels, outHeight, outWidth] = conv2d(x [batch, inChannels, height, width],
/// weight [outChannels, inChannels, kernelH, kernelW]) + bias [outChannels].
/// Output rows are done in bands: im2col of the band into [patch, bandRows·outWidth], then one GEMM.
public func conv2d(_ s: Conv2DShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                   bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, pool: ThreadPool = .current) {
    let (ho, wo) = (s.outHeight, s.outWidth)
    let direct = s.kernelH == 1 && s.kernelW == 1 && s.strideH == 1 && s.strideW == 1 && s.padH == 0 && s.padW == 0
    let band = max(1, min(ho, im2colBudget / max(s.patch * wo, 1)))
    let cols = direct ? nil : TensorStorage(count: s.patch * band * wo)
    for n in 0..<s.batch {
        let xn = x + n * s.inChannels * s.height * s.width
        let on = out + n * s.outChannels * ho * wo
        if let bias {
            pool.parallelFor(s.outChannels) { o, _ in (on + o * ho * wo).initialize(repeating: bias[o], count: ho * wo) }
        }
        var y0 = 0
        while y0 < ho {
            let rows = min(band, ho - y0)
            let b: UnsafePointer<Float>
            if let cols {
                im2col(s, x: xn, outRows: y0..<(y0 + rows), cols: cols.base, pool: pool)
                b = UnsafePointer(cols.base)
            } else {
                b = xn + y0 * wo
            }
            // [outChannels, patch] · [patch, rows·wo] → out[:, y0·wo ..< (y0+rows)·wo]
            sgemm(transA: false, transB: false, m: s.outChannels, n: rows * wo, k: s.patch, alpha: 1,
                  a: weight, lda: s.patch, b: b, ldb: direct ? ho * wo : rows * wo,
                  beta: bias == nil ? 0 : 1, c: on + y0 * wo, ldc: ho * wo, pool: pool)
            y0 += rows
        }
    }
    withExtendedLifetime(cols) {}
}

/// cols[(c·kh + i)·kw + j, (y − y0)·outWidth + x] = input pixel under kernel tap (i, j) for output
/// (y, x), or 0 in the padding.
func im2col(_ s: Conv2DShape, x: UnsafePointer<Float>, outRows: Range<Int>, cols: UnsafeMutablePointer<Float>,
            pool: ThreadPool) {
    let wo = s.outWidth, width = outRows.count * wo
    pool.parallelFor(s.patch) { p, _ in
        let c = p / (s.kernelH * s.kernelW), i = (p / s.kernelW) % s.kernelH, j = p % s.kernelW
        let plane = x + c * s.height * s.width
        let dst = cols + p * width
        for (r, y) in outRows.enumerated() {
            let iy = y * s.strideH - s.padH + i
            let row = dst + r * wo
            guard iy >= 0 && iy < s.height else { row.initialize(repeating: 0, count: wo); continue }
            let src = plane + iy * s.width
            if s.strideW == 1 {
                // Contiguous run of valid columns between the left and right padding.
                let lo = max(0, s.padW - j), hi = min(wo, s.width + s.padW - j)
                if lo > 0 { row.initialize(repeating: 0, count: min(lo, wo)) }
                if hi > lo { (row + lo).initialize(from: src + lo - s.padW + j, count: hi - lo) }
                if hi < wo { (row + max(hi, lo)).initialize(repeating: 0, count: wo - max(hi, lo)) }
            } else {
                for ox in 0..<wo {
                    let ix = ox * s.strideW - s.padW + j
                    row[ox] = ix >= 0 && ix < s.width ? src[ix] : 0
                }
            }
        }
    }
}

/// Reference for `conv2d`: the direct seven-loop sum in Double.
public func conv2dReference(_ s: Conv2DShape, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
    let (ho, wo) = (s.outHeight, s.outWidth)
    for n in 0..<s.batch { for o in 0..<s.outChannels { for y in 0..<ho { for xo in 0..<wo {
        var acc = Double(bias?[o] ?? 0)
        for c in 0..<s.inChannels { for i in 0..<s.kernelH { for j in 0..<s.kernelW {
            let iy = y * s.strideH - s.padH + i, ix = xo * s.strideW - s.padW + j
            guard iy >= 0 && iy < s.height && ix >= 0 && ix < s.width else { continue }
            acc += Double(x[((n * s.inChannels + c) * s.height + iy) * s.width + ix])
                * Double(weight[((o * s.inChannels + c) * s.kernelH + i) * s.kernelW + j])
        } } }
        out[((n * s.outChannels + o) * ho + y) * wo + xo] = Float(acc)
    } } } }
}

/// Nearest-neighbour upsampling by an integer factor: x [planes, h, w] → out [planes, h·f, w·f]
/// (planes = N·C).
public func upsampleNearest(planes: Int, height: Int, width: Int, factor: Int, x: UnsafePointer<Float>,
                            out: UnsafeMutablePointer<Float>, pool: ThreadPool = .current) {
    let ow = width * factor
    pool.parallelChunks(planes * height, minChunk: max(1, elementwiseGrain / max(ow * factor, 1))) { range, _ in
        for r in range {
            let src = x + r * width
            let dst = out + r * factor * ow
            for ix in 0..<width { (dst + ix * factor).initialize(repeating: src[ix], count: factor) }
            for k in 1..<max(factor, 1) { (dst + k * ow).initialize(from: dst, count: ow) }
        }
    }
}

/// Reference for `upsampleNearest`.
public func upsampleNearestReference(planes: Int, height: Int, width: Int, factor: Int, x: UnsafePointer<Float>,
                                     out: UnsafeMutablePointer<Float>) {
    for p in 0..<planes { for y in 0..<(height * factor) { for xo in 0..<(width * factor) {
        out[(p * height * factor + y) * width * factor + xo] = x[(p * height + y / factor) * width + xo / factor]
    } } }
}

// MARK: - Tensor-level

/// conv2d of x [N, C, H, W] with weight [O, C, kh, kw] and bias [O].
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
    conv2d(x, weight: weight, bias: bias, stride: stride, padding: (padding, padding))
}

/// conv2d with padding (rows, columns): a band framed by halo rows pads only its columns.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: (Int, Int)) -> Tensor {
    check(x.rank == 4 && weight.rank == 4 && weight.size(1) == x.size(1),
          "conv2d: input \(x.shape) does not fit weight \(weight.shape) ([out, in, kh, kw])")
    let s = Conv2DShape(batch: x.size(0), inChannels: x.size(1), height: x.size(2), width: x.size(3),
                        outChannels: weight.size(0), kernelH: weight.size(2), kernelW: weight.size(3),
                        strideH: stride, strideW: stride, padH: padding.0, padW: padding.1)
    check(s.outHeight > 0 && s.outWidth > 0, "conv2d: kernel \(weight.shape) larger than padded input \(x.shape)")
    let out = Tensor(uninitialized: [s.batch, s.outChannels, s.outHeight, s.outWidth])
    withExtendedLifetime((x, weight, bias)) { conv2d(s, x: x.data, weight: weight.data, bias: bias?.data, out: out.data) }
    return out
}

/// Nearest upsampling of x [N, C, H, W] by `factor`.
public func upsampleNearest(_ x: Tensor, factor: Int = 2) -> Tensor {
    check(x.rank == 4 && factor >= 1, "upsampleNearest needs [N, C, H, W] and factor ≥ 1, got \(x.shape), \(factor)")
    let out = Tensor(uninitialized: [x.size(0), x.size(1), x.size(2) * factor, x.size(3) * factor])
    withExtendedLifetime(x) {
        upsampleNearest(planes: x.size(0) * x.size(1), height: x.size(2), width: x.size(3), factor: factor,
                        x: x.data, out: out.data)
    }
    return out
}
