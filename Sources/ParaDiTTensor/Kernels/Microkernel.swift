// A register-tiled GEMM for the small products inside fused attention (score blocks Q·Kᵀ and
// P·V), where BLAS spends a large share of its time packing operands that are used only once.
// Here A is read in place (one broadcast per element) and B comes in 16-column panels; each 6×16
// tile of C lives in 12 AVX registers for the whole k loop.
//
// Where the CPU has AVX-512 the C kernel `paradit_micro_gemm_avx512` runs instead (12 × 32 tiles in
// zmm registers, twice the columns per instruction), with the same operations per output: same bits.
//
// B's layout is two strides: column panel j (columns 16j..<16j+16) starts at b + j·panelStride and
// its rows are ldb apart. A row-major B is (ldb, panelStride 16); a packed B, each panel a
// contiguous [k × 16] block, is (16, 16·k) and streams through the cache without set conflicts.

import CParaDiTKernels

/// Which microkernel `microGemm` runs: the AVX-512 one where the CPU has it.
public enum MicroKernels {
    public static let avx512: Bool = paradit_has_avx512f() != 0
    public static var name: String { avx512 ? "avx512 12×32" : "avx2 6×16" }
}

/// Rows and columns of one register tile.
public let microTileRows = 6
public let microTileCols = 16

/// C[m×n] = alpha · A[m×k] · B[k×n] (+ C when `accumulate`), A and C row-major, n a multiple of 16,
/// B in panels as described above.
/// `rowPad` is scratch of at least 6·k floats, used to zero-pad a last partial row tile; it may be
/// nil when m is a multiple of 6. `laneMax`, if given, is m vectors that each take the lane-wise
/// maximum of what is stored into their row (the caller reduces them), so that a softmax needs no
/// separate pass for the row maximum. `avx512` picks the C kernel (only where the CPU has it).
public func microGemm(
    m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, panelStride: Int,
    c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, rowPad: UnsafeMutablePointer<Float>?,
    laneMax: UnsafeMutablePointer<F8>? = nil, avx512: Bool = MicroKernels.avx512
) {
    check(n % microTileCols == 0, "microGemm needs n a multiple of \(microTileCols), got \(n)")
    if avx512 {
        paradit_micro_gemm_avx512(Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), Int64(panelStride),
                                  c, Int64(ldc), accumulate ? 1 : 0,
                                  laneMax.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Float.self) })
        return
    }
    let fullRows = m / microTileRows * microTileRows
    var j = 0
    while j < n {
        var i = 0
        while i < fullRows {
            microTile(k: k, a: a + i * lda, lda: lda, b: b + j / microTileCols * panelStride, ldb: ldb, c: c + i * ldc + j, ldc: ldc,
                      rows: microTileRows, alpha: alpha, accumulate: accumulate, laneMax: laneMax.map { $0 + i })
            i += microTileRows
        }
        j += microTileCols
    }
    let rest = m - fullRows
    if rest > 0 {
        guard let rowPad else { fatalError("microGemm: m = \(m) is not a multiple of 6 and no rowPad was given") }
        // Copy the last rows into a zeroed 6-row panel so the same tile code runs; store only `rest` rows.
        rowPad.update(repeating: 0, count: microTileRows * k)
        for r in 0..<rest { (rowPad + r * k).update(from: a + (fullRows + r) * lda, count: k) }
        j = 0
        while j < n {
            microTile(k: k, a: rowPad, lda: k, b: b + j / microTileCols * panelStride, ldb: ldb, c: c + fullRows * ldc + j, ldc: ldc,
                      rows: rest, alpha: alpha, accumulate: accumulate, laneMax: laneMax.map { $0 + fullRows })
            j += microTileCols
        }
    }
}

/// One 6×16 tile: acc = A[6×k] · B[k×16]; then C = alpha·acc (+ C) for the first `rows` rows.
@inline(__always)
func microTile(k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, alpha: Float, accumulate: Bool,
               laneMax: UnsafeMutablePointer<F8>?) {
    var c00 = F8(), c01 = F8(), c10 = F8(), c11 = F8(), c20 = F8(), c21 = F8()
    var c30 = F8(), c31 = F8(), c40 = F8(), c41 = F8(), c50 = F8(), c51 = F8()
    let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda, a4 = a + 4 * lda, a5 = a + 5 * lda
    var bp = b
    for p in 0..<k {
        let b0 = load8(bp), b1 = load8(bp + 8)
        var x = F8(repeating: a0[p])
        c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
        x = F8(repeating: a1[p])
        c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
        x = F8(repeating: a2[p])
        c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
        x = F8(repeating: a3[p])
        c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
        x = F8(repeating: a4[p])
        c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
        x = F8(repeating: a5[p])
        c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
        bp += ldb
    }
    let al = F8(repeating: alpha)
    storeTileRow(c, c00, c01, al, accumulate)
    if rows > 1 { storeTileRow(c + ldc, c10, c11, al, accumulate) }
    if rows > 2 { storeTileRow(c + 2 * ldc, c20, c21, al, accumulate) }
    if rows > 3 { storeTileRow(c + 3 * ldc, c30, c31, al, accumulate) }
    if rows > 4 { storeTileRow(c + 4 * ldc, c40, c41, al, accumulate) }
    if rows > 5 { storeTileRow(c + 5 * ldc, c50, c51, al, accumulate) }
    if let laneMax {
        laneMax[0] = vmax(laneMax[0], vmax(c00 * al, c01 * al))
        if rows > 1 { laneMax[1] = vmax(laneMax[1], vmax(c10 * al, c11 * al)) }
        if rows > 2 { laneMax[2] = vmax(laneMax[2], vmax(c20 * al, c21 * al)) }
        if rows > 3 { laneMax[3] = vmax(laneMax[3], vmax(c30 * al, c31 * al)) }
        if rows > 4 { laneMax[4] = vmax(laneMax[4], vmax(c40 * al, c41 * al)) }
        if rows > 5 { laneMax[5] = vmax(laneMax[5], vmax(c50 * al, c51 * al)) }
    }
}

@inline(__always)
func storeTileRow(_ row: UnsafeMutablePointer<Float>, _ lo: F8, _ hi: F8, _ alpha: F8, _ accumulate: Bool) {
    if accumulate {
        store8(load8(row).addingProduct(lo, alpha), row)
        store8(load8(row + 8).addingProduct(hi, alpha), row + 8)
    } else {
        store8(lo * alpha, row)
        store8(hi * alpha, row + 8)
    }
}
