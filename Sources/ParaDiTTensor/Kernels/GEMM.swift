import CParaDiTBLAS

// MARK: - Raw GEMM

/// C[m×n] = alpha · op(A) · op(B) + beta · C, row-major, through single-threaded cblas_sgemm
/// calls spread over `pool`.
///
/// op(A) is m×k (A stored m×k, or k×m when `transA`); op(B) is k×n (B stored k×n, or n×k when
/// `transB`). The work is cut into row bands of C (column bands when m is small), one BLAS call each.
public func sgemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
    pool: ThreadPool = .current
) {
    if m == 0 || n == 0 { return }
    let parts = gemmParts(m: m, n: n, k: k, threads: pool.threadCount)
    if parts.rows * parts.cols == 1 {
        sgemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                    b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    pool.parallelFor(parts.rows * parts.cols) { part, _ in
        let r = part / parts.cols, q = part % parts.cols
        let m0 = bandStart(r, parts.rows, m), m1 = bandStart(r + 1, parts.rows, m)
        let n0 = bandStart(q, parts.cols, n), n1 = bandStart(q + 1, parts.cols, n)
        let aBand = transA ? a + m0 : a + m0 * lda
        let bBand = transB ? b + n0 * ldb : b + n0
        sgemmSerial(transA: transA, transB: transB, m: m1 - m0, n: n1 - n0, k: k, alpha: alpha,
                    a: aBand, lda: lda, b: bBand, ldb: ldb, beta: beta, c: c + m0 * ldc + n0, ldc: ldc)
    }
}

/// One cblas_sgemm call on the calling thread.
@inline(__always)
public func sgemmSerial(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    if m == 0 || n == 0 { return }
    let opA: CBLAS_TRANSPOSE = transA ? CblasTrans : CblasNoTrans
    let opB: CBLAS_TRANSPOSE = transB ? CblasTrans : CblasNoTrans
    let (m32, n32, k32) = (Int32(m), Int32(n), Int32(k))
    let (lda32, ldb32, ldc32) = (Int32(max(lda, 1)), Int32(max(ldb, 1)), Int32(max(ldc, 1)))
    cblas_sgemm(CblasRowMajor, opA, opB, m32, n32, k32, alpha, a, lda32, b, ldb32, beta, c, ldc32)
}

/// How to cut an m×n product over `threads`. Each band's BLAS call packs its share of the split
/// operand and all of the other, so the larger of m and n is the one to split; no more parts than
/// there is work for (16 rows or 64 columns at least per band).
func gemmParts(m: Int, n: Int, k: Int, threads: Int) -> (rows: Int, cols: Int) {
    let flops: Double = Double(m) * Double(n) * Double(k)
    if threads == 1 || flops < 262_144 { return (1, 1) }
    let rowParts = min(threads, max(1, m / 16)), colParts = min(threads, max(1, n / 64))
    if rowParts == threads && (m >= n || colParts < threads) { return (threads, 1) }
    if colParts == threads { return (1, threads) }
    return (rowParts, max(1, min(colParts, threads / rowParts)))
}

@inline(__always)
func bandStart(_ i: Int, _ parts: Int, _ total: Int) -> Int {
    // Multiples of 8 keep band starts SIMD-aligned where possible.
    i == parts ? total : min(total, (i * total / parts + 7) / 8 * 8)
}

/// Reference for `sgemm`: the textbook triple loop, accumulating in Double.
public func sgemmReference(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    for i in 0..<m {
        for j in 0..<n {
            var acc = 0.0
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                acc += Double(av) * Double(bv)
            }
            let prior = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
            c[i * ldc + j] = Float(Double(alpha) * acc + prior)
        }
    }
}

// MARK: - Batched GEMM

/// For each of `batch` problems: C_i = alpha · op(A_i) · op(B_i) + beta · C_i, where problem i's
/// matrices start at `a + i·strideA` (likewise B, C). A stride of 0 shares a matrix across the batch.
public func sgemmBatched(
    batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int, strideA: Int,
    b: UnsafePointer<Float>, ldb: Int, strideB: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int,
    pool: ThreadPool = .current
) {
    if batch >= pool.threadCount || batch == 1 {
        // Enough problems to keep every thread busy with whole ones (or just one problem).
        if batch == 1 {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, pool: pool)
            return
        }
        pool.parallelFor(batch) { i, _ in
            sgemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                        a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
                        beta: beta, c: c + i * strideC, ldc: ldc)
        }
        return
    }
    for i in 0..<batch {
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
              a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
              beta: beta, c: c + i * strideC, ldc: ldc, pool: pool)
    }
}

// MARK: - Linear (GEMM with bias epilogue)

/// y[m×n] = x[m×k] · Wᵀ + bias, with W stored n×k as torch's `nn.Linear` keeps it.
/// The bias is written into y first and the product accumulated onto it (beta = 1), so the
/// epilogue costs one pass over y inside the bands BLAS already touches.
public func linear(
    m: Int, n: Int, k: Int,
    x: UnsafePointer<Float>, ldx: Int,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    y: UnsafeMutablePointer<Float>, ldy: Int,
    pool: ThreadPool = .current
) {
    let parts = gemmParts(m: m, n: n, k: k, threads: pool.threadCount)
    pool.parallelFor(parts.rows * parts.cols) { part, _ in
        let r = part / parts.cols, q = part % parts.cols
        let m0 = bandStart(r, parts.rows, m), m1 = bandStart(r + 1, parts.rows, m)
        let n0 = bandStart(q, parts.cols, n), n1 = bandStart(q + 1, parts.cols, n)
        if let bias {
            for i in m0..<m1 { (y + i * ldy + n0).update(from: bias + n0, count: n1 - n0) }
        }
        linearCall(m: m1 - m0, n: n1 - n0, k: k, x: x + m0 * ldx, ldx: ldx, weight: weight + n0 * k,
                   beta: bias == nil ? 0 : 1, y: y + m0 * ldy + n0, ldy: ldy)
    }
}

/// y[m×n] = x[m×k] · Wᵀ + beta · y (W n×k, row stride k) through BLAS, each row's result
/// independent of m and of where the row sits, so that a sample alone and the same sample in a
/// batch (a request served with others, a CFG half on its own rank) get the same bits. OpenBLAS
/// sums a row in the same order wherever it is only inside its kernels' full groups of rows: the
/// last m mod 4 rows go through tail kernels, and a product of at most 1,200 outputs with k ≥ 32
/// (0.3.17 on, x86_64) through small-matrix kernels, both of which order the sums otherwise. So
/// whole groups of `linearRowGroup` rows run in place and the rest runs padded with zero rows to a
/// whole group, past the small-matrix size.
@inline(__always)
func linearCall(m: Int, n: Int, k: Int, x: UnsafePointer<Float>, ldx: Int, weight: UnsafePointer<Float>, beta: Float,
                y: UnsafeMutablePointer<Float>, ldy: Int) {
    var whole = m - m % linearRowGroup
    if whole > 0 && !smallKernelCase(m: whole, n: n, k: k) {
        sgemmSerial(transA: false, transB: true, m: whole, n: n, k: k, alpha: 1, a: x, lda: ldx, b: weight, ldb: k,
                    beta: beta, c: y, ldc: ldy)
    } else {
        whole = 0
    }
    let rest = m - whole
    guard rest > 0 else { return }
    var rows = (rest + linearRowGroup - 1) / linearRowGroup * linearRowGroup
    if smallKernelCase(m: rows, n: n, k: k) {
        rows = (smallProductOutputs / n + linearRowGroup) / linearRowGroup * linearRowGroup
    }
    var xs = [Float](repeating: 0, count: rows * k), ys = [Float](repeating: 0, count: rows * n)
    xs.withUnsafeMutableBufferPointer { xs in
        ys.withUnsafeMutableBufferPointer { ys in
            for i in 0..<rest {
                (xs.baseAddress! + i * k).update(from: x + (whole + i) * ldx, count: k)
                if beta != 0 { (ys.baseAddress! + i * n).update(from: y + (whole + i) * ldy, count: n) }
            }
            sgemmSerial(transA: false, transB: true, m: rows, n: n, k: k, alpha: 1, a: xs.baseAddress!, lda: k,
                        b: weight, ldb: k, beta: beta, c: ys.baseAddress!, ldc: n)
            for i in 0..<rest { (y + (whole + i) * ldy).update(from: ys.baseAddress! + i * n, count: n) }
        }
    }
}

/// Whether OpenBLAS may take an x·Wᵀ product of this size to its small-matrix kernels.
@inline(__always)
func smallKernelCase(m: Int, n: Int, k: Int) -> Bool {
    m * n <= smallProductOutputs && k >= 32 && m * n * k <= 1_000_000
}

/// Outputs at or below which OpenBLAS may pick its small-matrix kernels for an x·Wᵀ product.
let smallProductOutputs = 1200
/// Rows computed as one group: a multiple of the x86_64 OpenBLAS SGEMM kernels' unroll (4), as band starts are.
let linearRowGroup = 8

/// Reference for `linear`.
public func linearReference(
    m: Int, n: Int, k: Int,
    x: UnsafePointer<Float>, ldx: Int,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    y: UnsafeMutablePointer<Float>, ldy: Int
) {
    sgemmReference(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: x, lda: ldx,
                   b: weight, ldb: k, beta: 0, c: y, ldc: ldy)
    if let bias {
        for i in 0..<m { for j in 0..<n { y[i * ldy + j] += bias[j] } }
    }
}

// MARK: - Tensor-level

/// Matrix product of the last two dims: [.., m, k] · [k, n] → [.., m, n] (with optional
/// transposes of the stored operands). `b` is shared over `a`'s leading dims.
public func matmul(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false) -> Tensor {
    check(a.rank >= 2 && b.rank == 2, "matmul needs a: [.., m, k] and b: 2-D, got \(a.shape) and \(b.shape)")
    let m = transA ? a.size(-1) : a.size(-2), ka = transA ? a.size(-2) : a.size(-1)
    let kb = transB ? b.size(1) : b.size(0), n = transB ? b.size(0) : b.size(1)
    check(ka == kb, "matmul inner sizes differ: \(a.shape)\(transA ? "ᵀ" : "") · \(b.shape)\(transB ? "ᵀ" : "")")
    let batch = a.count / max(m * ka, 1)
    let out = Tensor(uninitialized: Array(a.shape.dropLast(2)) + [m, n])
    withExtendedLifetime((a, b)) {
        sgemmBatched(batch: batch, transA: transA, transB: transB, m: m, n: n, k: ka, alpha: 1,
                     a: a.data, lda: a.size(-1), strideA: m * ka, b: b.data, ldb: b.size(1), strideB: 0,
                     beta: 0, c: out.data, ldc: n, strideC: m * n)
    }
    return out
}

/// `nn.Linear`: x [.., in] · weightᵀ ([out, in]) + bias [out] → [.., out].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    check(weight.rank == 2 && x.rank >= 1 && x.size(-1) == weight.size(1),
          "linear: input \(x.shape) does not fit weight \(weight.shape) ([out, in])")
    if let bias { check(bias.count == weight.size(0), "linear: bias \(bias.shape) does not fit weight \(weight.shape)") }
    let m = x.count / max(x.size(-1), 1), n = weight.size(0), k = weight.size(1)
    let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [n])
    withExtendedLifetime((x, weight, bias)) {
        linear(m: m, n: n, k: k, x: x.data, ldx: k, weight: weight.data, bias: bias?.data, y: out.data, ldy: n)
    }
    return out
}

// MARK: - Linear on narrow weights

/// y[m×n] = x[m×k] · Wᵀ + bias for a weight held in BF16, F16 or INT8: every thread takes a band
/// of output columns (weight rows) and walks it in blocks of about 4 MiB of Float32, widening
/// each block into its scratch before one BLAS call, so a narrow weight is read once and never
/// resident in Float32 (INT8 rows are scaled as they are widened). The bias is written first and
/// the product accumulated onto it, as in the Float32 `linear`.
public func linear(m: Int, x: UnsafePointer<Float>, ldx: Int, weight w: WeightMatrix, bias: UnsafePointer<Float>?,
                   y: UnsafeMutablePointer<Float>, ldy: Int, pool: ThreadPool = .current) {
    let (n, k) = (w.rows, w.columns)
    if m == 0 || n == 0 { return }
    let bands = max(1, min(pool.threadCount, n / 16))
    // About 4 MiB of Float32 per block; but every block repacks the activations (m×k), which costs
    // as much as a product ~1/width as wide, so with many rows a block is at least 1024 columns.
    let block = min(n, max(m >= 256 ? 1024 : 16, (1_048_576 / max(k, 1)) / 16 * 16))
    pool.withWorkspace(count: bands * block * k) { scratch in
        pool.parallelFor(bands) { band, _ in
            let n0 = bandStart(band, bands, n), n1 = bandStart(band + 1, bands, n)
            let panel = scratch + band * block * k
            var j = n0
            while j < n1 {
                let width = min(block, n1 - j)
                w.widenRows(j..<(j + width), into: panel)
                if let bias { for i in 0..<m { (y + i * ldy + j).update(from: bias + j, count: width) } }
                linearCall(m: m, n: width, k: k, x: x, ldx: ldx, weight: panel, beta: bias == nil ? 0 : 1,
                           y: y + j, ldy: ldy)
                j += width
            }
        }
    }
}

/// Reference for the narrow `linear`: the weight widened whole, then `linearReference`.
public func linearReference(m: Int, x: UnsafePointer<Float>, ldx: Int, weight w: WeightMatrix, bias: UnsafePointer<Float>?,
                            y: UnsafeMutablePointer<Float>, ldy: Int) {
    let wide = Tensor(uninitialized: [w.rows, w.columns])
    w.widenRows(0..<w.rows, into: wide.data)
    linearReference(m: m, n: w.rows, k: w.columns, x: x, ldx: ldx, weight: wide.data, bias: bias, y: y, ldy: ldy)
}

/// `linear` on a weight of any element type: x [.., in] → [.., out].
public func linear(_ x: Tensor, weight: WeightMatrix, bias: Tensor? = nil) -> Tensor {
    if let dense = weight.dense { return linear(x, weight: dense, bias: bias) }
    check(x.rank >= 1 && x.size(-1) == weight.columns, "linear: input \(x.shape) does not fit weight [\(weight.rows), \(weight.columns)]")
    if let bias { check(bias.count == weight.rows, "linear: bias \(bias.shape) does not fit \(weight.rows) outputs") }
    let m = x.count / max(x.size(-1), 1)
    let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [weight.rows])
    withExtendedLifetime((x, weight, bias)) {
        let (x, k, bias, y, n) = (x.data, weight.columns, bias?.data, out.data, weight.rows)
        switch weight.compute {
        case .f32: linear(m: m, x: x, ldx: k, weight: weight, bias: bias, y: y, ldy: n)
        case .bf16: linearBF16(m: m, x: x, ldx: k, weight: weight, bias: bias, y: y, ldy: n)
        case .int8: linearInt8Dynamic(m: m, x: x, ldx: k, weight: weight, bias: bias, y: y, ldy: n)
        }
    }
    return out
}
