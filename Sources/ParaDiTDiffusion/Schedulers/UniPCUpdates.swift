import Foundation
import ParaDiTTensor

/// UniPC's predictor (UniP) and corrector (UniC), `multistep_uni_p_bh_update` and
/// `multistep_uni_c_bh_update` in their data-prediction form.
extension UniPCMultistepScheduler {
    /// The coefficients both updates share for a step from σ_s0 to σ_t with `order` terms, whose
    /// earlier x₀ predictions sit at σ of `earlier` (newest first).
    struct Coefficients {
        var ratio: Float, m0Scale: Float, bScale: Float
        var rks: [Float], b: [Float], r: [[Float]]
    }

    func coefficients(from sigmaS0: Float, to sigmaT: Float, earlier: [Float], order: Int) -> Coefficients {
        let (alphaT, sT) = alphaSigma(sigmaT)
        let lambdaS0 = lambda(sigmaS0), h = lambda(sigmaT) - lambdaS0
        var rks = earlier.prefix(order - 1).map { (lambda($0) - lambdaS0) / h }
        rks.append(1)
        let hh = -h, hPhi1 = expm1f(hh)
        var hPhiK = hPhi1 / hh - 1, factorial = 1
        let bH = config.solverType == "bh1" ? hh : expm1f(hh)
        var r: [[Float]] = [], b: [Float] = []
        for i in 1...order {
            r.append(rks.map { powf($0, Float(i - 1)) })
            b.append(hPhiK * Float(factorial) / bH)
            factorial *= i + 1
            hPhiK = hPhiK / hh - Float(1 / Double(factorial))
        }
        return Coefficients(ratio: sT / alphaSigma(sigmaS0).sigma, m0Scale: alphaT * hPhi1, bScale: alphaT * bH,
                            rks: rks, b: b, r: r)
    }

    /// (mᵢ − m₀)/rₖ of the earlier x₀ predictions (newest first after m₀).
    func differences(_ m0: Tensor, earlier: ArraySlice<Tensor?>, rks: [Float]) -> [Tensor] {
        zip(earlier, rks).map { m, rk in dividedDifference(m!, m0, by: rk) }
    }

    /// UniP: the sample at σ[i + 1] from the sample at σ[i] and the newest x₀ predictions.
    func predicted(_ x: Tensor, index i: Int) -> Tensor {
        let order = thisOrder, outputs = modelOutputsNewestFirst
        let m0 = outputs[0]!
        let earlier = (1..<order).map { sigmas[i - $0] }
        let c = coefficients(from: sigmas[i], to: sigmas[i + 1], earlier: earlier, order: order)
        let base = linearCombination([(c.ratio, x), (-c.m0Scale, m0)])
        let d = differences(m0, earlier: outputs.dropFirst().prefix(order - 1), rks: c.rks)
        guard !d.isEmpty else { return base }
        let rhos: [Float] = order == 2 ? [0.5]
            : solve(Array(c.r.dropLast().map { Array($0.dropLast()) }), Array(c.b.dropLast()))
        let residual = linearCombination(Array(zip(rhos, d)))
        return linearCombination([(1, base), (-c.bScale, residual)])
    }

    /// UniC: the sample at σ[i] corrected with x₀ predicted there (`x0`), from the sample at σ[i − 1].
    func corrected(_ x0: Tensor, lastSample x: Tensor, sample: Tensor, index i: Int) -> Tensor {
        let order = thisOrder, outputs = modelOutputsNewestFirst
        let m0 = outputs[0]!
        let earlier = (1..<order).map { sigmas[i - 1 - $0] }
        let c = coefficients(from: sigmas[i - 1], to: sigmas[i], earlier: earlier, order: order)
        let rhos: [Float] = order == 1 ? [0.5] : solve(c.r, c.b)
        let base = linearCombination([(c.ratio, x), (-c.m0Scale, m0)])
        let d = differences(m0, earlier: outputs.dropFirst().prefix(order - 1), rks: c.rks)
        let dT = linearCombination([(1, x0), (-1, m0)])
        let total = d.isEmpty ? linearCombination([(rhos[order - 1], dT)])
            : linearCombination([(1, linearCombination(Array(zip(rhos.dropLast(), d)))), (rhos[order - 1], dT)])
        return linearCombination([(1, base), (-c.bScale, total)])
    }
}

/// A·x = b for a small A, by LU with partial pivoting in float32 (as torch.linalg.solve).
func solve(_ a: [[Float]], _ b: [Float]) -> [Float] {
    var a = a, b = b
    let n = b.count
    for k in 0..<n {
        let p = (k..<n).max { abs(a[$0][k]) < abs(a[$1][k]) }!
        if p != k { a.swapAt(p, k); b.swapAt(p, k) }
        for r in (k + 1)..<n {
            let l = a[r][k] / a[k][k]
            for j in k..<n { a[r][j] -= l * a[k][j] }
            b[r] -= l * b[k]
        }
    }
    var x = [Float](repeating: 0, count: n)
    for k in stride(from: n - 1, through: 0, by: -1) {
        var s = b[k]
        for j in (k + 1)..<n { s -= a[k][j] * x[j] }
        x[k] = s / a[k][k]
    }
    return x
}
