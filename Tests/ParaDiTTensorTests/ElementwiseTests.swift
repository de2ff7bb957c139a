import Foundation
import ParaDiTTensor
import Testing

@Suite("Element-wise kernels")
struct ElementwiseTests {
    static let counts = [1, 7, 8, 9, 129, 20_000, 70_001]

    @Test("exp8 is within 2 ulp-ish of libm, 0 below −87.3 and at −inf")
    func expAccuracy() {
        var worst: Double = 0
        var x: Float = -87
        while x < 88 {
            let v = exp8(F8(repeating: x))[0]
            worst = max(worst, abs(Double(v) - Foundation.exp(Double(x))) / Foundation.exp(Double(x)))
            x += 0.0137
        }
        #expect(worst < 3e-7, "exp8 worst relative error \(worst)")
        #expect(exp8(F8(repeating: -.infinity))[0] == 0)
        #expect(exp8(F8(repeating: -100))[0] == 0)
        #expect(exp8(F8(repeating: 0))[0] == 1)
    }

    @Test("erfc8 is within float32 noise of libm, relative, tails included")
    func erfcAccuracy() {
        var worst: Double = 0
        var x: Float = -6
        while x < 4 {
            let expected = Foundation.erfc(Double(x))
            worst = max(worst, abs(Double(erfc8(F8(repeating: x))[0]) - expected) / expected)
            x += 0.001
        }
        // Past the fit's 1.2e-7, the float32 rounding of x² in e^(−x²) costs up to x²·2^−23.
        #expect(worst < 2e-6, "erfc8 worst relative error \(worst)")
    }

    @Test("GELU (erf and tanh) and SiLU equal libm references", arguments: counts)
    func activations(count: Int) {
        let x = Tensor.randn([count], seed: 1, std: 3)
        for pool in testPools {
            for approx in [GELUApproximation.none, .tanh] {
                let out = Tensor(zeros: [count]), ref = Tensor(zeros: [count])
                gelu(count: count, x.data, out: out.data, approximation: approx, pool: pool)
                geluReference(count: count, x.data, out: ref.data, approximation: approx)
                expectClose(out, ref, tolerance: 1e-6, "gelu \(approx) n=\(count)")
            }
            let out = Tensor(zeros: [count]), ref = Tensor(zeros: [count])
            silu(count: count, x.data, out: out.data, pool: pool)
            siluReference(count: count, x.data, out: ref.data)
            expectClose(out, ref, tolerance: 1e-6, "silu n=\(count)")
        }
    }

    @Test("add, mul, scale are exact", arguments: counts)
    func arithmetic(count: Int) {
        let a = Tensor.randn([count], seed: 2), b = Tensor.randn([count], seed: 3)
        let sum = a + b, prod = a * b, scaled = Tensor(zeros: [count])
        scale(count: count, a.data, by: 1.5, out: scaled.data)
        for i in 0..<count {
            #expect(sum.data[i] == a.data[i] + b.data[i])
            #expect(prod.data[i] == a.data[i] * b.data[i])
            #expect(scaled.data[i] == a.data[i] * 1.5)
        }
    }

    @Test("modulate and gated residual equal references", arguments: [(1, 1, 1), (2, 7, 9), (3, 33, 129)])
    func modulation(batch: Int, tokens: Int, dim: Int) {
        let x = Tensor.randn([batch, tokens, dim], seed: 4), params = Tensor.randn([batch, 3 * dim], seed: 5)
        // scale, shift and gate are chunks of one modulation vector, as adaLN produces them.
        let scale = params.data, shift = params.data + dim, gate = params.data + 2 * dim
        for pool in testPools {
            let out = Tensor(zeros: x.shape), ref = Tensor(zeros: x.shape)
            modulate(batch: batch, tokens: tokens, dim: dim, x: x.data, scale: scale, shift: shift, paramStride: 3 * dim,
                     out: out.data, pool: pool)
            modulateReference(batch: batch, tokens: tokens, dim: dim, x: x.data, scale: scale, shift: shift,
                              paramStride: 3 * dim, out: ref.data)
            expectClose(out, ref, tolerance: 1e-7, "modulate")
            let y = Tensor.randn(x.shape, seed: 6)
            gatedAdd(batch: batch, tokens: tokens, dim: dim, residual: x.data, gate: gate, paramStride: 3 * dim, y: y.data,
                     out: out.data, pool: pool)
            gatedAddReference(batch: batch, tokens: tokens, dim: dim, residual: x.data, gate: gate, paramStride: 3 * dim,
                              y: y.data, out: ref.data)
            expectClose(out, ref, tolerance: 1e-7, "gatedAdd")
        }
    }

    @Test("softmax equals reference; rows of −inf give NaN like torch", arguments: oddSizes)
    func softmaxRows(n: Int) {
        let x = Tensor.randn([5, n], seed: 7, std: 4)
        x.data[n] = -.infinity
        let out = softmax(x), ref = Tensor(zeros: [5, n])
        softmaxReference(rows: 5, n: n, x: x.data, out: ref.data)
        if n == 1 {
            #expect(out.data[1].isNaN && ref.data[1].isNaN)
        } else {
            expectClose(out, ref, tolerance: 1e-6, "softmax n=\(n)")
        }
    }
}
