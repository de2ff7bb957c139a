import CParaDiTDNNL
import CParaDiTKernels

/// What runs the BF16 products: oneDNN's kernel for a DiT-sized product where it beats the Float32
/// GEMM on the widened weights. With AMX (`brg:avx512_core_amx_bf16`) it is several times the
/// Float32 rate, and AMD's Zen 4 retires AVX512-BF16's VDPBF16PS (two products) at the FMA rate.
/// Intel retires it at half the FMA rate: oneDNN's `brg:avx512_core_bf16` then ran at 0.47–0.54× the
/// Float32 GEMM (docs/PERFORMANCE.md), so there, as without either, `linearBF16` runs the same
/// rounded products through the Float32 GEMM (`fast` false). The rule is fixed per CPU, never timed,
/// so a machine always gives the same bits.
public enum BF16Kernels {
    public static let implementation: String? =
        paradit_matmul_impl(PARADIT_BF16, 256, 256, 256).map { String(cString: $0) }
    public static let fast: Bool = implementation.map {
        $0.contains("amx") || ($0.contains("bf16") && paradit_cpu_is_amd() != 0)
    } ?? false
}

/// y[m×n] = bf16(x) · Wᵀ + bias, W held in BF16 and used as it is (in place in a mapped BF16
/// checkpoint), every product summed in Float32 by oneDNN, one fixed block of output columns per call.
/// `oneDNN: false` (or no BF16 kernel) computes the same rounded product through the Float32 GEMM.
public func linearBF16(m: Int, x: UnsafePointer<Float>, ldx: Int, weight w: WeightMatrix, bias: UnsafePointer<Float>?,
                       y: UnsafeMutablePointer<Float>, ldy: Int, oneDNN: Bool = BF16Kernels.fast,
                       pool: ThreadPool = .current) {
    let (n, k) = (w.rows, w.columns)
    check(w.element == .bf16, "linearBF16 needs BF16 weights, got \(w.element)")
    if m == 0 || n == 0 { return }
    // A single row runs as two (the second zero): oneDNN takes one row by another kernel, whose sums differ.
    let callRows = max(m, 2)
    var xb = [UInt16](unsafeUninitializedCapacity: callRows * k) { $1 = callRows * k }
    xb.withUnsafeMutableBufferPointer { xb in
        if m == 1 { (xb.baseAddress! + k).update(repeating: 0, count: k) }
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
        let pair = m == 1 ? Tensor(uninitialized: [2, ldy]) : nil
        withExtendedLifetime((w, pair)) {
            let out = pair?.data ?? y
            pool.parallelFor(blocks) { b, _ in
                let columns = (b * bf16ColumnBlock)..<min(n, (b + 1) * bf16ColumnBlock)
                bf16Block(m: callRows, k: k, xb: xb.baseAddress!, weight: w, columns: columns, bias: bias, y: out,
                          ldy: ldy)
            }
            if let pair { y.update(from: pair.data, count: n) }
        }
    }
}

/// Output columns per oneDNN call in `linearBF16`. Every call covers one fixed block of columns (the
/// last one n's remainder), whatever the thread count: oneDNN's BF16 kernels sum an output in an order
/// that depends on the call's column count, not on its rows (from two on), so a row's result is the
/// same alone or batched (`BatchingTests.joinsLate`, `GEMMTests.bf16RowInvariance`).
let bf16ColumnBlock = 256

/// Output columns `columns` of every row, written in place (row stride ldy).
private func bf16Block(m: Int, k: Int, xb: UnsafePointer<UInt16>, weight w: WeightMatrix, columns: Range<Int>,
                       bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, ldy: Int) {
    w.forEachRun(in: columns) { cols, base in
        let status = paradit_bf16_matmul(Int64(m), Int64(cols.count), Int64(k), xb, Int64(k),
                                         base.assumingMemoryBound(to: UInt16.self), Int64(k),
                                         y + cols.lowerBound, Int64(ldy))
        check(status == 0, "oneDNN's BF16 matmul failed (status \(status)) on \(m)×\(k)·\(k)×\(cols.count)")
    }
    if let bias { for i in 0..<m { addBias(y + i * ldy, bias, columns) } }
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
