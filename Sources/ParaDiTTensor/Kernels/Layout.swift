// Copies that change layout: strided 2-D copies, sequence slicing and concatenation, and the
// head permute [B, L, H, D] ↔ [B, H, L, D].

/// dst[r, 0..<cols] = src[r, 0..<cols] for r in 0..<rows, with row strides lds and ldd.
public func copy2D(rows: Int, cols: Int, src: UnsafePointer<Float>, lds: Int,
                   dst: UnsafeMutablePointer<Float>, ldd: Int, pool: ThreadPool = .current) {
    if rows == 0 || cols == 0 { return }
    if lds == cols && ldd == cols {
        pool.parallelChunks(rows * cols, minChunk: elementwiseGrain) { r, _ in
            (dst + r.lowerBound).update(from: src + r.lowerBound, count: r.count)
        }
        return
    }
    pool.parallelChunks(rows, minChunk: max(1, elementwiseGrain / cols)) { r, _ in
        for i in r { (dst + i * ldd).update(from: src + i * lds, count: cols) }
    }
}

/// Permutes the middle two dims: x [a, b, c, d] → out [a, c, b, d]. With (a, b, c, d) =
/// (B, L, H, D) this is the head permute, and applied again it undoes itself.
public func permute0213(a: Int, b: Int, c: Int, d: Int, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                        pool: ThreadPool = .current) {
    pool.parallelChunks(a * c, minChunk: max(1, elementwiseGrain / max(b * d, 1))) { range, _ in
        for ac in range {
            let i = ac / c, k = ac % c
            for j in 0..<b { (out + ((i * c + k) * b + j) * d).update(from: x + ((i * b + j) * c + k) * d, count: d) }
        }
    }
}

/// Reference for `permute0213`, element by element.
public func permute0213Reference(a: Int, b: Int, c: Int, d: Int, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
    for i in 0..<a { for j in 0..<b { for k in 0..<c { for l in 0..<d {
        out[((i * c + k) * b + j) * d + l] = x[((i * b + j) * c + k) * d + l]
    } } } }
}

// MARK: - Tensor-level

/// Tokens `range` of x: [B, L, D...] as a new tensor [B, range.count, D...].
public func sliceSequence(_ x: Tensor, _ range: Range<Int>) -> Tensor {
    check(x.rank >= 2 && range.lowerBound >= 0 && range.upperBound <= x.size(1),
          "sliceSequence: tokens \(range) out of bounds for \(x.shape)")
    let row = x.count / max(x.size(0) * x.size(1), 1)
    var shape = x.shape
    shape[1] = range.count
    let out = Tensor(uninitialized: shape)
    withExtendedLifetime(x) {
        copy2D(rows: x.size(0), cols: range.count * row, src: x.data + range.lowerBound * row, lds: x.size(1) * row,
               dst: out.data, ldd: range.count * row)
    }
    return out
}

/// Concatenation along the sequence axis: [B, L_i, D...] → [B, ΣL_i, D...].
public func concatSequence(_ parts: [Tensor]) -> Tensor {
    check(!parts.isEmpty, "concatSequence needs at least one tensor")
    let first = parts[0]
    for p in parts {
        check(p.rank == first.rank && p.size(0) == first.size(0) && Array(p.shape.dropFirst(2)) == Array(first.shape.dropFirst(2)),
              "concatSequence: \(p.shape) does not match \(first.shape) outside the sequence axis")
    }
    let row = first.shape.dropFirst(2).reduce(1, *)
    let total = parts.reduce(0) { $0 + $1.size(1) }
    var shape = first.shape
    shape[1] = total
    let out = Tensor(uninitialized: shape)
    var at = 0
    for p in parts {
        withExtendedLifetime(p) {
            copy2D(rows: p.size(0), cols: p.size(1) * row, src: p.data, lds: p.size(1) * row,
                   dst: out.data + at * row, ldd: total * row)
        }
        at += p.size(1)
    }
    return out
}

/// [B, L, H, D] → [B, H, L, D] (and back: the permute is its own inverse up to naming).
public func permuteHeads(_ x: Tensor) -> Tensor {
    check(x.rank == 4, "permuteHeads needs a 4-D tensor, got \(x.shape)")
    let out = Tensor(uninitialized: [x.size(0), x.size(2), x.size(1), x.size(3)])
    withExtendedLifetime(x) {
        permute0213(a: x.size(0), b: x.size(1), c: x.size(2), d: x.size(3), x: x.data, out: out.data)
    }
    return out
}

/// `n` items in `parts` contiguous ranges whose sizes differ by at most one (the first n % parts
/// ranges are one longer): how tokens and heads are split when they do not divide evenly.
public func balancedSplit(_ n: Int, parts: Int) -> [Range<Int>] {
    check(parts >= 1 && n >= 0, "balancedSplit: \(n) items into \(parts) parts")
    let base = n / parts, extra = n % parts
    var ranges: [Range<Int>] = [], start = 0
    for i in 0..<parts {
        let size = base + (i < extra ? 1 : 0)
        ranges.append(start..<(start + size))
        start += size
    }
    return ranges
}

/// Elements `range` of `x` along `axis`, as a new tensor.
public func slice(_ x: Tensor, axis: Int, _ range: Range<Int>) -> Tensor {
    let full = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *), outer = x.count / (full * inner)
    var shape = x.shape
    shape[axis] = range.count
    let out = Tensor(uninitialized: shape)
    withExtendedLifetime(x) {
        copy2D(rows: outer, cols: range.count * inner, src: x.data + range.lowerBound * inner, lds: full * inner,
               dst: out.data, ldd: range.count * inner)
    }
    return out
}

/// x with its axes reordered: out.shape[i] = x.shape[dims[i]], as torch's `x.permute(dims)` made
/// contiguous. The innermost output axis is copied with its source stride.
public func permuted(_ x: Tensor, _ dims: [Int]) -> Tensor {
    check(dims.sorted() == Array(0..<x.rank), "permuted: \(dims) is not a permutation of the axes of \(x.shape)")
    let rank = x.rank, shape = dims.map { x.shape[$0] }
    var strides = [Int](repeating: 1, count: rank)
    for i in stride(from: rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * x.shape[i + 1] }
    let from = dims.map { strides[$0] }
    let out = Tensor(uninitialized: shape)
    guard out.count > 0 else { return out }
    let inner = shape[rank - 1], step = from[rank - 1]
    var index = [Int](repeating: 0, count: rank)
    withExtendedLifetime(x) {
        let src = UnsafePointer(x.data), dst = out.data
        for row in 0..<(out.count / inner) {
            var at = 0
            for i in 0..<(rank - 1) { at += index[i] * from[i] }
            for j in 0..<inner { dst[row * inner + j] = src[at + j * step] }
            var i = rank - 2
            while i >= 0 {
                index[i] += 1
                if index[i] < shape[i] { break }
                index[i] = 0
                i -= 1
            }
        }
    }
    return out
}

/// Concatenation along the last axis: [..., D_i] → [..., ΣD_i] (torch.cat(dim=-1)).
public func concatFeatures(_ parts: [Tensor]) -> Tensor {
    check(!parts.isEmpty, "concatFeatures needs at least one tensor")
    let lead = Array(parts[0].shape.dropLast()), rows = lead.reduce(1, *)
    for p in parts { check(Array(p.shape.dropLast()) == lead, "concatFeatures: \(p.shape) does not match \(parts[0].shape) before the last axis") }
    let total = parts.reduce(0) { $0 + $1.size(-1) }
    let out = Tensor(uninitialized: lead + [total])
    var at = 0
    for p in parts {
        withExtendedLifetime(p) { copy2D(rows: rows, cols: p.size(-1), src: p.data, lds: p.size(-1), dst: out.data + at, ldd: total) }
        at += p.size(-1)
    }
    return out
}

/// Writes src [B, L, ...] into dst [B, T, ...] at sequence offset `at` (dst[:, at:at+L] = src).
public func copySequence(_ src: Tensor, into dst: Tensor, at: Int) {
    check(src.rank >= 2 && dst.rank == src.rank && src.size(0) == dst.size(0) && Array(src.shape.dropFirst(2)) == Array(dst.shape.dropFirst(2))
          && at >= 0 && at + src.size(1) <= dst.size(1), "copySequence: \(src.shape) does not fit \(dst.shape) at token \(at)")
    let row = src.shape.dropFirst(2).reduce(1, *)
    withExtendedLifetime((src, dst)) {
        copy2D(rows: src.size(0), cols: src.size(1) * row, src: src.data, lds: src.size(1) * row,
               dst: dst.data + at * row, ldd: dst.size(1) * row)
    }
}

/// Reference for `permuted`: every element by its full multi-index.
public func permutedReference(_ x: Tensor, _ dims: [Int]) -> Tensor {
    let shape = dims.map { x.shape[$0] }
    var values = [Float](repeating: 0, count: x.count), source = x.scalars
    for flat in 0..<x.count {
        var rest = flat, index = [Int](repeating: 0, count: shape.count)
        for i in stride(from: shape.count - 1, through: 0, by: -1) { index[i] = rest % shape[i]; rest /= shape[i] }
        var from = 0
        for axis in 0..<x.rank { from = from * x.shape[axis] + index[dims.firstIndex(of: axis)!] }
        values[flat] = source[from]
    }
    source = []
    return Tensor(shape: shape, values: values)
}

/// Copies the rows of one view into another of the same rows and width.
public func copy(_ src: StridedView, into dst: StridedView) {
    check(src.rows == dst.rows && src.width == dst.width, "copy: \(src.rows)×\(src.width) into \(dst.rows)×\(dst.width)")
    withExtendedLifetime((src, dst)) {
        copy2D(rows: src.rows, cols: src.width, src: src.data, lds: src.rowStride, dst: dst.data, ldd: dst.rowStride)
    }
}

/// Concatenation along `axis` (torch.cat(parts, dim=axis)).
public func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
    check(!parts.isEmpty && axis >= 0 && axis < parts[0].rank, "concatenate: axis \(axis) of \(parts.first?.shape ?? [])")
    let first = parts[0].shape
    for p in parts {
        check(p.rank == first.count && (0..<p.rank).allSatisfy { $0 == axis || p.shape[$0] == first[$0] },
              "concatenate: \(p.shape) does not match \(first) outside axis \(axis)")
    }
    let outer = first[..<axis].reduce(1, *), inner = first[(axis + 1)...].reduce(1, *)
    let total = parts.reduce(0) { $0 + $1.shape[axis] }
    var shape = first
    shape[axis] = total
    let out = Tensor(uninitialized: shape)
    var at = 0
    for p in parts {
        let n = p.shape[axis] * inner
        withExtendedLifetime(p) { copy2D(rows: outer, cols: n, src: p.data, lds: n, dst: out.data + at, ldd: total * inner) }
        at += n
    }
    return out
}

/// An embedding lookup: rows `ids` of `table` [vocabulary, width] → [ids.count, width]. Every id
/// must be a row of the table (the caller checks ids from outside).
public func embeddingRows(_ table: Tensor, ids: [Int]) -> Tensor {
    let (rows, width) = (table.size(0), table.size(1))
    check(ids.allSatisfy { $0 >= 0 && $0 < rows }, "embedding: an id outside 0..<\(rows)")
    let out = Tensor(uninitialized: [ids.count, width])
    withExtendedLifetime(table) {
        for (i, id) in ids.enumerated() { (out.data + i * width).update(from: table.data + id * width, count: width) }
    }
    return out
}
