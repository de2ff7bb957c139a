import ParaDiTTensor

// Element-wise tensor arithmetic of the scheduler steps. Each function rounds exactly where
// torch's eager operations do (one float32 rounding per operation, no fused multiply-add), so a
// step built from them matches diffusers to the last bit whenever its scalars do.

/// Σₖ cₖ·xₖ, summed left to right with every product and partial sum rounded, as torch evaluates
/// `c0 * x0 + c1 * x1 - c2 * x2` (a subtraction is a negated coefficient: exact in float32).
func linearCombination(_ terms: [(Float, Tensor)]) -> Tensor {
    let first = terms[0].1
    let n = first.count
    let out = Tensor(uninitialized: first.shape)
    let o = out.data
    withExtendedLifetime(terms) {
        let x0 = first.data, c0 = terms[0].0
        for i in 0..<n { o[i] = c0 * x0[i] }
        for (c, x) in terms.dropFirst() {
            check(x.count == n, "linearCombination: term \(x.shape) does not match \(first.shape)")
            let p = x.data
            for i in 0..<n { o[i] = o[i] + c * p[i] }
        }
    }
    return out
}

/// (a − c·b) / d: the x₀ prediction from an ε prediction.
func subtractScaledDivide(_ a: Tensor, _ c: Float, _ b: Tensor, dividedBy d: Float) -> Tensor {
    check(a.count == b.count, "subtractScaledDivide: \(a.shape) and \(b.shape)")
    let out = Tensor(uninitialized: a.shape)
    let o = out.data, pa = a.data, pb = b.data
    withExtendedLifetime((a, b)) {
        for i in 0..<a.count { o[i] = (pa[i] - c * pb[i]) / d }
    }
    return out
}

/// c·(a − b): a divided difference of DPM-Solver's model outputs.
func scaledDifference(_ c: Float, _ a: Tensor, _ b: Tensor) -> Tensor {
    check(a.count == b.count, "scaledDifference: \(a.shape) and \(b.shape)")
    let out = Tensor(uninitialized: a.shape)
    let o = out.data, pa = a.data, pb = b.data
    withExtendedLifetime((a, b)) {
        for i in 0..<a.count { o[i] = c * (pa[i] - pb[i]) }
    }
    return out
}

/// (a − b)/c: a divided difference of UniPC's x₀ predictions.
func dividedDifference(_ a: Tensor, _ b: Tensor, by c: Float) -> Tensor {
    check(a.count == b.count, "dividedDifference: \(a.shape) and \(b.shape)")
    let out = Tensor(uninitialized: a.shape)
    let o = out.data, pa = a.data, pb = b.data
    withExtendedLifetime((a, b)) {
        for i in 0..<a.count { o[i] = (pa[i] - pb[i]) / c }
    }
    return out
}

/// Clamps `x` to [−range, range] in place (clip_sample).
func clampInPlace(_ x: Tensor, range: Float) {
    let p = x.data
    for i in 0..<x.count { p[i] = min(max(p[i], -range), range) }
}

/// Channels [0, first) and [first, C) of x: [B, C, ...] as two new tensors (torch.split on dim 1).
func splitChannels(_ x: Tensor, first: Int) -> (Tensor, Tensor) {
    let batch = x.shape[0], channels = x.shape[1]
    let inner = x.count / (batch * channels)
    var headShape = x.shape, tailShape = x.shape
    headShape[1] = first
    tailShape[1] = channels - first
    let head = Tensor(uninitialized: headShape), tail = Tensor(uninitialized: tailShape)
    let headRow = first * inner, tailRow = (channels - first) * inner
    for b in 0..<batch {
        let src = x.data + b * channels * inner
        (head.data + b * headRow).update(from: src, count: headRow)
        (tail.data + b * tailRow).update(from: src + headRow, count: tailRow)
    }
    return (head, tail)
}
