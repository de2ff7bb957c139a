import CParaDiTDNNL

/// x[m×k] rounded to BF16 bits (nearest even, as torch's `.to(bfloat16)` for finite values), row
/// stride k in `out`.
public func roundRowsToBFloat16(m: Int, k: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<UInt16>) {
    for i in 0..<m {
        let row = x + i * ldx, dst = out + i * k
        var j = 0
        while j + 8 <= k {
            let bits = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD8<UInt32>.self)
            let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
            for l in 0..<8 { dst[j + l] = UInt16(truncatingIfNeeded: rounded[l]) }
            j += 8
        }
        while j < k { dst[j] = bfloat16Bits(row[j]); j += 1 }
    }
}

/// What runs the BF16 products: oneDNN's kernel for a DiT-sized product. With AMX
/// (`brg:avx512_core_amx_bf16`) it is several times the Float32 rate, with AVX512-BF16
/// (`brg:avx512_core_bf16`) about twice on AMD Zen 4 and half on the Intel Xeons measured
/// (docs/PERFORMANCE.md); without either (`fast` false) `linearBF16` emulates it in Float32.
public enum BF16Kernels {
    public static let implementation: String? =
        paradit_matmul_impl(PARADIT_BF16, 256, 256, 256).map { String(cString: $0) }
    public static let fast: Bool = implementation.map { $0.contains("bf16") } ?? false
}

/// y[m×n] = bf16(x) · Wᵀ + bias, W held in BF16 and used as it is (in place in a mapped BF16
/// checkpoint), every product summed in Float32 by oneDNN, one band of output columns per thread.
/// `oneDNN: false` (or no BF16 kernel) computes the same rounded product through the Float32 GEMM.
public func linearBF16(m: Int, x: UnsafePointer<Float>, ldx: Int, weight w: WeightMatrix, bias: UnsafePointer<Float>?,
                       y: UnsafeMutablePointer<Float>, ldy: Int, oneDNN: Bool = BF16Kernels.fast,
                       pool: ThreadPool = .current) {
    let (n, k) = (w.rows, w.columns)
    check(w.element == .bf16, "linearBF16 needs BF16 weights, got \(w.element)")
    if m == 0 || n == 0 { return }
    // Whole blocks of rows, the last padded with zero rows: every row goes through the same kernel at the
    // same shape, so its result does not depend on how many rows come with it (a request alone or batched).
    let padded = (m + bf16RowBlock - 1) / bf16RowBlock * bf16RowBlock
    var xb = [UInt16](repeating: 0, count: padded * k)
    xb.withUnsafeMutableBufferPointer { xb in
        pool.parallelChunks(m, minChunk: 8) { rows, _ in
            roundRowsToBFloat16(m: rows.count, k: k, x: x + rows.lowerBound * ldx, ldx: ldx,
                                out: xb.baseAddress! + rows.lowerBound * k)
        }
        guard oneDNN else {
            let wide = Tensor(uninitialized: [m, k])
            convertBFloat16ToFloat(count: m * k, xb.baseAddress!, wide.data)
            withExtendedLifetime(wide) {
                linear(m: m, x: wide.data, ldx: k, weight: w, bias: bias, y: y, ldy: ldy, pool: pool)
            }
            return
        }
        let blocks = (n + bf16ColumnBlock - 1) / bf16ColumnBlock
        withExtendedLifetime(w) {
            pool.parallelFor(blocks) { b, _ in
                let columns = (b * bf16ColumnBlock)..<min(n, (b + 1) * bf16ColumnBlock)
                bf16Block(m: m, padded: padded, k: k, xb: xb.baseAddress!, weight: w, columns: columns, bias: bias,
                          y: y, ldy: ldy)
            }
        }
    }
}

/// Rows and output columns per oneDNN call in `linearBF16`. Every call has this shape (the last rows
/// padded, the last columns those of n's remainder at every thread count) and writes a scratch of the
/// same layout, so an output's sums never depend on the rows beside it or on the threads.
let bf16RowBlock = 128, bf16ColumnBlock = 256

/// Output columns `columns` of every row, a block of rows at a time, through a scratch block.
private func bf16Block(m: Int, padded: Int, k: Int, xb: UnsafePointer<UInt16>, weight w: WeightMatrix,
                       columns: Range<Int>, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, ldy: Int) {
    var scratch = [Float](unsafeUninitializedCapacity: bf16RowBlock * bf16ColumnBlock) {
        $1 = bf16RowBlock * bf16ColumnBlock
    }
    scratch.withUnsafeMutableBufferPointer { scratch in
        let out = scratch.baseAddress!
        for i in stride(from: 0, to: padded, by: bf16RowBlock) {
            w.forEachRun(in: columns) { cols, base in
                let status = paradit_bf16_matmul(Int64(bf16RowBlock), Int64(cols.count), Int64(k), xb + i * k, Int64(k),
                                                 base.assumingMemoryBound(to: UInt16.self), Int64(k),
                                                 out + (cols.lowerBound - columns.lowerBound), Int64(bf16ColumnBlock))
                check(status == 0, "oneDNN's BF16 matmul failed (status \(status)) on \(bf16RowBlock)×\(k)·\(k)×\(cols.count)")
            }
            for r in 0..<min(bf16RowBlock, m - i) {
                let row = y + (i + r) * ldy + columns.lowerBound
                row.update(from: out + r * bf16ColumnBlock, count: columns.count)
                if let bias { addBias(row, bias + columns.lowerBound, 0..<columns.count) }
            }
        }
    }
}

@inline(__always)
private func addBias(_ row: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, _ columns: Range<Int>) {
    var j = columns.lowerBound
    while j + 8 <= columns.upperBound {
        let v = UnsafeRawPointer(row + j).loadUnaligned(as: F8.self)
            + UnsafeRawPointer(bias + j).loadUnaligned(as: F8.self)
        UnsafeMutableRawPointer(row + j).storeBytes(of: v, as: F8.self)
        j += 8
    }
    while j < columns.upperBound { row[j] += bias[j]; j += 1 }
}

/// Reference for `linearBF16`: x rounded to BF16, the weight widened, sums in Double.
public func linearBF16Reference(m: Int, x: UnsafePointer<Float>, ldx: Int, weight w: WeightMatrix,
                                bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, ldy: Int) {
    let k = w.columns
    let rounded = Tensor(uninitialized: [m, k])
    for i in 0..<m {
        for j in 0..<k { rounded.data[i * k + j] = Float(bitPattern: UInt32(bfloat16Bits(x[i * ldx + j])) << 16) }
    }
    withExtendedLifetime(rounded) {
        linearReference(m: m, x: rounded.data, ldx: k, weight: w, bias: bias, y: y, ldy: ldy)
    }
}
