import Foundation

// Rotary position embedding as Flux applies it (diffusers `FluxPosEmbed` + `apply_rotary_emb` with
// `use_real_unbind_dim=-1`): each axis of the position ids gets axesDim[i] channels, adjacent
// channel pairs (2j, 2j+1) rotate together by angle pos·θ^(−2j/axesDim[i]).

/// cos and sin tables [tokens, Σ axesDim] for position ids [tokens, axes] (Flux: axes 3,
/// ids as float). Angles in float64 from float32 positions, then rounded to float32, as diffusers does.
public func ropeFrequencies(ids: UnsafePointer<Float>, tokens: Int, axesDim: [Int], theta: Double)
    -> (cos: Tensor, sin: Tensor)
{
    let dim = axesDim.reduce(0, +)
    for d in axesDim { check(d % 2 == 0, "RoPE axis dims must be even, got \(axesDim)") }
    let cosT = Tensor(uninitialized: [tokens, dim]), sinT = Tensor(uninitialized: [tokens, dim])
    for t in 0..<tokens {
        var col = 0
        for (axis, d) in axesDim.enumerated() {
            let pos = Double(ids[t * axesDim.count + axis])
            for j in 0..<(d / 2) {
                let angle = pos * (1 / Foundation.pow(theta, Double(2 * j) / Double(d)))
                let c = Float(Foundation.cos(angle)), s = Float(Foundation.sin(angle))
                cosT.data[t * dim + col + 2 * j] = c; cosT.data[t * dim + col + 2 * j + 1] = c
                sinT.data[t * dim + col + 2 * j] = s; sinT.data[t * dim + col + 2 * j + 1] = s
            }
            col += d
        }
    }
    return (cosT, sinT)
}

/// In place on x: [tokens, heads, headDim] rows of stride ldx (q or k straight out of a
/// projection): for each pair (x₀, x₁) at channels (2j, 2j+1),
/// x₀' = x₀·cos − x₁·sin, x₁' = x₁·cos + x₀·sin, with cos, sin: [tokens, headDim].
public func applyRope(tokens: Int, heads: Int, headDim: Int, x: UnsafeMutablePointer<Float>, ldx: Int,
                      cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, pool: ThreadPool = .current) {
    // Sign pattern (−1, +1, −1, +1, …) so that x_rotated = swapPairs(x) · sign, as in diffusers.
    let sign = F8(-1, 1, -1, 1, -1, 1, -1, 1)
    pool.parallelChunks(tokens, minChunk: max(1, elementwiseGrain / max(heads * headDim, 1))) { range, _ in
        for t in range {
            let c = cos + t * headDim, s = sin + t * headDim
            for h in 0..<heads {
                let p = x + t * ldx + h * headDim
                var j = 0
                while j + 8 <= headDim {
                    let v = load8(p + j)
                    let swapped = F8(v[1], v[0], v[3], v[2], v[5], v[4], v[7], v[6])
                    store8(v * load8(c + j) + swapped * sign * load8(s + j), p + j)
                    j += 8
                }
                while j < headDim {
                    let x0 = p[j], x1 = p[j + 1]
                    p[j] = x0 * c[j] - x1 * s[j]
                    p[j + 1] = x1 * c[j + 1] + x0 * s[j + 1]
                    j += 2
                }
            }
        }
    }
}

/// Reference for `ropeFrequencies` + `applyRope`: multiplies each channel pair, as a complex
/// number, by e^(i·angle) computed in Double from the ids directly. x: [tokens, heads, headDim], contiguous.
public func applyRopeReference(tokens: Int, heads: Int, headDim: Int, x: UnsafeMutablePointer<Float>,
                               ids: UnsafePointer<Float>, axesDim: [Int], theta: Double) {
    for t in 0..<tokens {
        var pairAxis = [(axis: Int, index: Int, dim: Int)]()
        for (axis, d) in axesDim.enumerated() { for j in 0..<(d / 2) { pairAxis.append((axis, j, d)) } }
        for h in 0..<heads {
            let p = x + (t * heads + h) * headDim
            for (pair, info) in pairAxis.enumerated() {
                let angle = Double(ids[t * axesDim.count + info.axis]) / Foundation.pow(theta, Double(2 * info.index) / Double(info.dim))
                let re = Double(p[2 * pair]), im = Double(p[2 * pair + 1])
                p[2 * pair] = Float(re * Foundation.cos(angle) - im * Foundation.sin(angle))
                p[2 * pair + 1] = Float(im * Foundation.cos(angle) + re * Foundation.sin(angle))
            }
        }
    }
}

// MARK: - Tensor-level

/// cos and sin tables [tokens, Σ axesDim] for position ids [tokens, axes].
public func ropeFrequencies(ids: Tensor, axesDim: [Int], theta: Double) -> (cos: Tensor, sin: Tensor) {
    check(ids.rank == 2 && ids.size(1) == axesDim.count, "ropeFrequencies: ids \(ids.shape) need \(axesDim.count) axes")
    return withExtendedLifetime(ids) { ropeFrequencies(ids: ids.data, tokens: ids.size(0), axesDim: axesDim, theta: theta) }
}

/// In place on a view of `batch`·L rows, each heads·headDim columns (q or k of a fused
/// projection), with cos, sin: [L, headDim] shared by the samples.
public func applyRope(_ x: StridedView, batch: Int, headDim: Int, cos: Tensor, sin: Tensor) {
    let tokens = x.rows / max(batch, 1)
    check(batch > 0 && x.rows == batch * tokens && x.width % headDim == 0 && cos.shape == [tokens, headDim] && sin.shape == cos.shape,
          "applyRope: \(x.rows) rows of \(x.width) over a batch of \(batch) with tables \(cos.shape)")
    withExtendedLifetime((x, cos, sin)) {
        for i in 0..<batch {
            applyRope(tokens: tokens, heads: x.width / headDim, headDim: headDim, x: x.data + i * tokens * x.rowStride,
                      ldx: x.rowStride, cos: cos.data, sin: sin.data)
        }
    }
}
