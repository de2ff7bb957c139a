import CParaDiTDNNL

// MARK: - Per-token activation quantization

/// x[m×k] quantized row by row for an 8-bit product: q = round(x / s) + 128 (u8, row stride k),
/// s = max|x_row| / 127 (1 for a row of zeros), so q - 128 is the symmetric INT8 value in -127...127.
/// The unsigned offset is what VNNI's u8 × s8 dot product takes; `linearInt8Dynamic` removes it.
public func quantizeRows(m: Int, k: Int, x: UnsafePointer<Float>, ldx: Int,
                         q: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>) {
    // Adding 1.5·2²³ + 128 rounds to nearest even and leaves 128 + round(v) in the low byte.
    let magic = F8(repeating: 12_583_040), low = F8(repeating: -127), high = F8(repeating: 127)
    for i in 0..<m {
        let row = x + i * ldx, out = q + i * k
        var wide = F8(repeating: 0), j = 0
        while j + 8 <= k {
            let v = UnsafeRawPointer(row + j).loadUnaligned(as: F8.self)
            wide = vmax(wide, vmax(v, -v))
            j += 8
        }
        var largest = hmax(wide)
        while j < k { largest = max(largest, abs(row[j])); j += 1 }
        let scale: Float = largest > 0 ? largest / 127 : 1
        scales[i] = scale
        let inverse = 1 / scale
        j = 0
        while j + 8 <= k {
            let v = UnsafeRawPointer(row + j).loadUnaligned(as: F8.self) * inverse
            let bits = unsafeBitCast(vmin(vmax(v, low), high) + magic, to: SIMD8<UInt32>.self)
            for l in 0..<8 { out[j + l] = UInt8(truncatingIfNeeded: bits[l]) }
            j += 8
        }
        while j < k {
            out[j] = UInt8(Int32(max(-127, min(127, (row[j] * inverse).rounded(.toNearestOrEven)))) + 128)
            j += 1
        }
    }
}

/// Float(v) for every lane, correctly rounded (as `Float(Int32)`), through the exponent-bits trick on
/// each 16-bit half: both halves convert exactly, so their sum rounds once.
@_transparent func floatLanes(_ v: SIMD8<Int32>) -> F8 {
    let two23 = SIMD8<Int32>(repeating: 0x4B00_0000)
    let high = unsafeBitCast(((v &>> 16) &+ 32768) | two23, to: F8.self) - F8(repeating: 8_421_376)
    let low = unsafeBitCast((v & 0xFFFF) | two23, to: F8.self) - F8(repeating: 8_388_608)
    return high * 65536 + low
}

// MARK: - INT8 × INT8 linear

/// What runs the 8-bit products: oneDNN's kernel for a DiT-sized product, and whether it is one
/// with exact s32 sums at VNNI/AMX speed. Without one (AVX2 only, arm64), `linearInt8Dynamic`
/// computes the same quantized product through the Float32 GEMM instead.
public enum Int8Kernels {
    public static let implementation: String? =
        paradit_matmul_impl(PARADIT_U8S8, 256, 256, 256).map { String(cString: $0) }
    public static let fast: Bool = implementation.map { $0.contains("vnni") || $0.contains("amx") } ?? false
}

/// Widest input for exact s32 sums: 255 · 127 · k stays below 2³¹.
let int8MaxColumns = 66_000

/// y[m×n] = dequantized(q(x) · Wᵀ) + bias for an INT8 weight computing in INT8: x is quantized
/// per token (`quantizeRows`), the product summed exactly in s32 by oneDNN, one band of output columns
/// per thread, and each sum scaled in place: y = (Σ q·w − 128·Σw) · s_x · s_w + bias.
/// `oneDNN: false` (or no fast kernel) computes the same quantized product through Float32 GEMM.
public func linearInt8Dynamic(m: Int, x: UnsafePointer<Float>, ldx: Int, weight w: WeightMatrix,
                              bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, ldy: Int,
                              oneDNN: Bool = Int8Kernels.fast, pool: ThreadPool = .current) {
    let (n, k) = (w.rows, w.columns)
    check(w.compute == .int8, "linearInt8Dynamic needs INT8 weights computing in INT8")
    if m == 0 || n == 0 { return }
    var q = [UInt8](unsafeUninitializedCapacity: m * k) { $1 = m * k }
    var rowScales = [Float](unsafeUninitializedCapacity: m) { $1 = m }
    q.withUnsafeMutableBufferPointer { q in
        rowScales.withUnsafeMutableBufferPointer { s in
            pool.parallelChunks(m, minChunk: 8) { rows, _ in
                quantizeRows(m: rows.count, k: k, x: x + rows.lowerBound * ldx, ldx: ldx,
                             q: q.baseAddress! + rows.lowerBound * k, scales: s.baseAddress! + rows.lowerBound)
            }
            if oneDNN && k <= int8MaxColumns {
                int8Product(m: m, q: q.baseAddress!, scales: s.baseAddress!, weight: w, bias: bias, y: y, ldy: ldy,
                            pool: pool)
            } else {
                emulatedInt8Product(m: m, q: q.baseAddress!, scales: s.baseAddress!, weight: w, bias: bias, y: y,
                                    ldy: ldy, pool: pool)
            }
        }
    }
}

/// The s32 products into y's own memory, band by band, then scaled there.
private func int8Product(m: Int, q: UnsafePointer<UInt8>, scales: UnsafePointer<Float>, weight w: WeightMatrix,
                         bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, ldy: Int, pool: ThreadPool) {
    let (n, k) = (w.rows, w.columns)
    let bands = max(1, min(pool.threadCount, n / 16))
    let raw = UnsafeMutableRawPointer(y)
    withExtendedLifetime(w) {
        pool.parallelFor(bands) { band, _ in
            let n0 = bandStart(band, bands, n), n1 = bandStart(band + 1, bands, n)
            w.forEachRun(in: n0..<n1) { rows, base in
                let status = paradit_u8s8_matmul(Int64(m), Int64(rows.count), Int64(k), q, Int64(k),
                                                 base.assumingMemoryBound(to: Int8.self), Int64(k),
                                                 (raw + rows.lowerBound * 4).assumingMemoryBound(to: Int32.self),
                                                 Int64(ldy))
                check(status == 0, "oneDNN's 8-bit matmul failed (status \(status)) on \(m)×\(k)·\(k)×\(rows.count)")
            }
            scaleInt8Sums(rows: 0..<m, columns: n0..<n1, scales: scales, weight: w, bias: bias, y: raw, ldy: ldy)
        }
    }
}

/// y[i, j] = (s32 sum at y[i, j] − 128 · rowSum[j]) · scales[i] · s_w[j] + bias[j], in place
/// (the sums are read as Int32 bits, the results written as Float).
private func scaleInt8Sums(rows: Range<Int>, columns: Range<Int>, scales: UnsafePointer<Float>, weight w: WeightMatrix,
                           bias: UnsafePointer<Float>?, y: UnsafeMutableRawPointer, ldy: Int) {
    let weightScales = w.scales!
    withExtendedLifetime(weightScales) {
        let sw = weightScales.data
        w.rowSums!.withUnsafeBufferPointer { sums in
            let sums = sums.baseAddress!
            for i in rows {
                let at = y + i * ldy * 4, sx = scales[i]
                var j = columns.lowerBound
                while j + 8 <= columns.upperBound {
                    let acc = at.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Int32>.self)
                        &- 128 &* UnsafeRawPointer(sums + j).loadUnaligned(as: SIMD8<Int32>.self)
                    let s = UnsafeRawPointer(sw + j).loadUnaligned(as: F8.self) * sx
                    var v = floatLanes(acc) * s
                    if let bias { v += UnsafeRawPointer(bias + j).loadUnaligned(as: F8.self) }
                    at.storeBytes(of: v, toByteOffset: j * 4, as: F8.self)
                    j += 8
                }
                while j < columns.upperBound {
                    let acc = at.load(fromByteOffset: j * 4, as: Int32.self) &- 128 &* sums[j]
                    at.storeBytes(of: Float(acc) * (sw[j] * sx) + (bias?[j] ?? 0), toByteOffset: j * 4, as: Float.self)
                    j += 1
                }
            }
        }
    }
}

/// The same quantized product without an 8-bit kernel: q(x) dequantized to Float32 rows, then the
/// widening GEMM on the INT8 weight.
private func emulatedInt8Product(m: Int, q: UnsafePointer<UInt8>, scales: UnsafePointer<Float>, weight w: WeightMatrix,
                                 bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, ldy: Int,
                                 pool: ThreadPool) {
    let k = w.columns
    let xq = Tensor(uninitialized: [m, k])
    for i in 0..<m {
        for j in 0..<k { xq.data[i * k + j] = Float(Int32(q[i * k + j]) - 128) * scales[i] }
    }
    withExtendedLifetime(xq) {
        linear(m: m, x: xq.data, ldx: k, weight: w, bias: bias, y: y, ldy: ldy, pool: pool)
    }
}

/// Reference for `linearInt8Dynamic`: the same quantization, every dot product summed in Int64.
public func linearInt8DynamicReference(m: Int, x: UnsafePointer<Float>, ldx: Int, weight w: WeightMatrix,
                                       bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, ldy: Int) {
    let (n, k) = (w.rows, w.columns)
    var q = [UInt8](repeating: 0, count: m * k), sx = [Float](repeating: 0, count: m)
    quantizeRows(m: m, k: k, x: x, ldx: ldx, q: &q, scales: &sx)
    for j in 0..<n {
        let row = w.rowAddress(j).assumingMemoryBound(to: Int8.self), sw = w.scales!.data[j]
        for i in 0..<m {
            var acc: Int64 = 0
            for p in 0..<k { acc += Int64(Int32(q[i * k + p]) - 128) * Int64(row[p]) }
            y[i * ldy + j] = Float(acc) * (sw * sx[i]) + (bias?[j] ?? 0)
        }
    }
}
