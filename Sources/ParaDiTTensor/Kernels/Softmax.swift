import Foundation

/// Softmax over the last dim of x: [rows, n] (in place allowed), numerically stable
/// (the row maximum is subtracted first).
public func softmax(rows: Int, n: Int, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                    pool: ThreadPool = .current) {
    pool.parallelChunks(rows, minChunk: max(1, elementwiseGrain / max(n, 1))) { range, _ in
        for r in range {
            let o = out + r * n
            if UnsafePointer(o) != x + r * n { o.update(from: x + r * n, count: n) }
            let m = maskedRowMax(o, n, nil)
            if m == -.infinity { o.update(repeating: .nan, count: n); continue }
            let total = expShiftedInPlace(o, n, m)
            scaleRow(o, n, 1 / total)
        }
    }
}

/// Reference for `softmax`, in Double. A row of only −inf gives NaN, as torch does.
public func softmaxReference(rows: Int, n: Int, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        var m = -Double.infinity
        for j in 0..<n { m = max(m, Double(x[r * n + j])) }
        var total = 0.0
        for j in 0..<n { total += Foundation.exp(Double(x[r * n + j]) - m) }
        for j in 0..<n { out[r * n + j] = Float(Foundation.exp(Double(x[r * n + j]) - m) / total) }
    }
}

/// Softmax over the last dim.
public func softmax(_ x: Tensor) -> Tensor {
    let n = x.size(-1)
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime(x) { softmax(rows: x.count / max(n, 1), n: n, x: x.data, out: out.data) }
    return out
}
