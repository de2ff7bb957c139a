import Foundation

/// The element type a linear layer's weight is held in.
public enum WeightElement: String, Sendable, CaseIterable {
    case f32, bf16, f16, int8

    public var byteSize: Int {
        switch self {
        case .f32: return 4
        case .bf16, .f16: return 2
        case .int8: return 1
        }
    }
}

/// What a linear layer on a weight computes in: Float32 (narrow weights widened block by block), BF16
/// products summed in Float32 (BF16 weights; the input rounded to BF16), or 8-bit products summed
/// exactly in Int32 (INT8 weights; the input quantized per token).
public enum LinearCompute: String, Sendable { case f32, bf16, int8 }

/// A linear layer's weight [out, in] (torch's `nn.Linear` layout) in the element type it is held
/// in: Float32 as a tensor, or BF16/F16/INT8 rows read in place — from the checkpoint's mapped
/// file (zero-copy) or from a converted copy. INT8 rows carry one scale each (w ≈ q · scale).
/// Rows may come from several places (the parts of a fused q|k|v projection), so fusing never
/// copies a mapped checkpoint.
public final class WeightMatrix: @unchecked Sendable {
    public let rows: Int, columns: Int
    public let element: WeightElement
    /// Float32 weights as one tensor (the BLAS path); nil for the narrow types.
    public let dense: Tensor?
    /// Narrow types: consecutive row ranges and where each starts.
    let parts: [(rows: Range<Int>, base: UnsafeRawPointer)]
    /// INT8: the scale of every row.
    public let scales: Tensor?
    /// What keeps `parts` alive (a mapped file, an owned buffer).
    let owners: [AnyObject]
    public let compute: LinearCompute
    /// INT8 compute (`linearInt8Dynamic`): each row's sum of its values, which the 8-bit product's
    /// unsigned input offset (128) adds and the epilogue takes back.
    public let rowSums: [Int32]?

    public init(dense: Tensor) {
        check(dense.rank == 2, "a weight matrix is [out, in], got \(dense.shape)")
        (rows, columns, element, self.dense) = (dense.size(0), dense.size(1), .f32, dense)
        (parts, scales, owners, compute, rowSums) = ([], nil, [], .f32, nil)
    }

    /// Narrow rows at `base` (row-major, `columns` per row) kept alive by `owner`, computed in Float32
    /// or in their own type (`compute` .bf16 for BF16 rows, .int8 for INT8 rows).
    public init(rows: Int, columns: Int, element: WeightElement, base: UnsafeRawPointer, owner: AnyObject,
                scales: Tensor? = nil, compute: LinearCompute = .f32) {
        check(element != .f32, "Float32 weights are a dense tensor")
        check(element == .int8 ? scales?.count == rows : scales == nil, "INT8 weights need one scale per row")
        check(compute == .f32 || compute.rawValue == element.rawValue,
              "\(element) weights cannot compute in \(compute)")
        (self.rows, self.columns, self.element, dense) = (rows, columns, element, nil)
        (parts, self.scales, owners, self.compute) = ([(0..<rows, base)], scales, [owner], compute)
        let q = base.assumingMemoryBound(to: Int8.self)
        rowSums = compute != .int8 ? nil : (0..<rows).map { r in
            (0..<columns).reduce(Int32(0)) { $0 + Int32(q[r * columns + $1]) }
        }
    }

    /// `dense` [out, in] narrowed to `element` (as `narrowed` does at load) into memory of its own.
    public convenience init(narrowing dense: Tensor, to element: WeightElement, compute: LinearCompute = .f32) {
        check(dense.rank == 2 && element != .f32, "narrowing takes an [out, in] tensor to a narrow type")
        let (rows, columns) = (dense.size(0), dense.size(1))
        let (bytes, scales) = withExtendedLifetime(dense) {
            narrowed(dense.data, count: dense.count, columns: columns, to: element)
        }
        let owner = Tensor(uninitialized: [(bytes.count + 3) / 4])
        UnsafeMutableRawPointer(owner.data).copyMemory(from: bytes, byteCount: bytes.count)
        self.init(rows: rows, columns: columns, element: element, base: owner.data, owner: owner.storage,
                  scales: scales.map { Tensor(shape: [rows], values: $0) }, compute: compute)
    }

    private init(rows: Int, columns: Int, element: WeightElement, parts: [(rows: Range<Int>, base: UnsafeRawPointer)],
                 scales: Tensor?, owners: [AnyObject], compute: LinearCompute, rowSums: [Int32]?) {
        (self.rows, self.columns, self.element, dense) = (rows, columns, element, nil)
        (self.parts, self.scales, self.owners, self.compute, self.rowSums) = (parts, scales, owners, compute, rowSums)
    }

    /// Matrices of one type and width stacked by rows (a fused projection).
    public static func stacked(_ list: [WeightMatrix]) -> WeightMatrix {
        let first = list[0]
        check(list.allSatisfy {
            $0.columns == first.columns && $0.element == first.element && $0.compute == first.compute
        }, "stacked weights differ in width or type")
        if first.element == .f32 { return WeightMatrix(dense: concatenate(list.map { $0.dense! }, axis: 0)) }
        var at = 0, parts: [(rows: Range<Int>, base: UnsafeRawPointer)] = []
        for m in list {
            parts += m.parts.map { ((($0.rows.lowerBound + at)..<($0.rows.upperBound + at)), $0.base) }
            at += m.rows
        }
        let scales = first.element == .int8 ? concatenate(list.map { $0.scales! }, axis: 0) : nil
        return WeightMatrix(rows: at, columns: first.columns, element: first.element, parts: parts, scales: scales,
                            owners: list.flatMap(\.owners) + list.compactMap(\.dense?.storage),
                            compute: first.compute, rowSums: first.rowSums == nil ? nil : list.flatMap { $0.rowSums! })
    }

    /// Bytes the weight keeps resident (the scales included).
    public var residentBytes: Int {
        rows * columns * element.byteSize + (scales?.count ?? 0) * 4 + (rowSums?.count ?? 0) * 4
    }

    /// The narrow rows `range` as runs that lie contiguously in memory: `body(rows, start of the first)`.
    func forEachRun(in range: Range<Int>, _ body: (Range<Int>, UnsafeRawPointer) -> Void) {
        for part in parts where part.rows.overlaps(range) {
            let lo = max(part.rows.lowerBound, range.lowerBound), hi = min(part.rows.upperBound, range.upperBound)
            body(lo..<hi, part.base + (lo - part.rows.lowerBound) * columns * element.byteSize)
        }
    }

    /// Where narrow row `r` starts.
    func rowAddress(_ r: Int) -> UnsafeRawPointer {
        let part = parts.first { $0.rows.contains(r) }!
        return part.base + (r - part.rows.lowerBound) * columns * element.byteSize
    }

    /// Rows `range` widened to Float32 into `out` (range.count × columns), INT8 rows times their
    /// scale: the weight as the GEMM uses it.
    public func widenRows(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        if let dense {
            withExtendedLifetime(dense) {
                out.update(from: dense.data + range.lowerBound * columns, count: range.count * columns)
            }
            return
        }
        forEachRun(in: range) { rows, src in
            let dst = out + (rows.lowerBound - range.lowerBound) * columns, count = rows.count * columns
            switch element {
            case .bf16: convertBFloat16ToFloat(count: count, src, dst)
            case .f16: convertHalfToFloat(count: count, src, dst)
            case .int8:
                let scales = self.scales!
                withExtendedLifetime(scales) {
                    for r in rows {
                        let offset = (r - rows.lowerBound) * columns
                        convertInt8ToFloat(count: columns, src + offset, dst + offset, scale: scales.data[r])
                    }
                }
            case .f32: break
            }
        }
    }
}

// MARK: - Conversions

/// out[i] = the BF16 value at src[i], exactly (its bits become the high half of a Float32).
public func convertBFloat16ToFloat(count: Int, _ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    var i = 0
    while i + 8 <= count {
        let h = SIMD8<UInt32>(truncatingIfNeeded: src.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self))
        UnsafeMutableRawPointer(out + i).storeBytes(of: h &<< 16, as: SIMD8<UInt32>.self)
        i += 8
    }
    while i < count {
        out[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16)
        i += 1
    }
}

/// out[i] = Float(half[i]) for `count` IEEE half-precision values at `src` (any alignment). On
/// x86_64 with F16C (the haswell target) the Float16 conversion compiles to vcvtph2ps.
public func convertHalfToFloat(count: Int, _ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    var i = 0
    while i + 8 <= count {
        let h = src.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)
        for l in 0..<8 { out[i + l] = Float(Float16(bitPattern: h[l])) }
        i += 8
    }
    while i < count {
        out[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
        i += 1
    }
}

/// out[i] = Float(q[i]) · scale for `count` signed bytes at `src`.
public func convertInt8ToFloat(count: Int, _ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>, scale: Float = 1) {
    let q = src.assumingMemoryBound(to: Int8.self)
    for i in 0..<count { out[i] = Float(q[i]) * scale }
}

/// BF16 bits of `x`, rounded to nearest even (NaN stays a quiet NaN), as torch's `.to(bfloat16)`.
@inline(__always) public func bfloat16Bits(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(bits >> 16) | 0x40 }
    return UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
}

/// `values` narrowed to `element` (BF16/F16 rounded to nearest even; INT8 symmetric per row of
/// `columns`, scale = max|w| / 127 as torchao's weight-only INT8): the bytes and, for INT8, the row scales.
public func narrowed(_ values: UnsafePointer<Float>, count: Int, columns: Int,
                     to element: WeightElement) -> (bytes: [UInt8], scales: [Float]?) {
    switch element {
    case .bf16, .f16:
        var out = [UInt8](repeating: 0, count: count * 2)
        out.withUnsafeMutableBytes { raw in
            let dst = raw.baseAddress!.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { dst[i] = element == .bf16 ? bfloat16Bits(values[i]) : Float16(values[i]).bitPattern }
        }
        return (out, nil)
    case .int8:
        let rows = count / columns
        var out = [UInt8](repeating: 0, count: count), scales = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            let row = values + r * columns
            var largest: Float = 0
            for j in 0..<columns { largest = max(largest, abs(row[j])) }
            let scale = largest > 0 ? largest / 127 : 1
            scales[r] = scale
            for j in 0..<columns {
                out[r * columns + j] = UInt8(bitPattern: Int8(max(-127, min(127, (row[j] / scale).rounded()))))
            }
        }
        return (out, scales)
    case .f32:
        return (Array(UnsafeRawBufferPointer(start: values, count: count * 4)), nil)
    }
}

