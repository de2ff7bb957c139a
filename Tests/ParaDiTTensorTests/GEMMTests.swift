import ParaDiTTensor
import Testing

@Suite("GEMM conformance")
struct GEMMTests {
    struct Case: CustomStringConvertible, Sendable {
        var m, n, k: Int
        var transA, transB: Bool
        var description: String { "\(m)×\(k)·\(k)×\(n)\(transA ? " Aᵀ" : "")\(transB ? " Bᵀ" : "")" }
    }

    static let cases: [Case] = {
        var all: [Case] = []
        let shapes = [(1, 1, 1), (7, 9, 5), (129, 33, 17), (16, 129, 64), (200, 70, 129), (1, 300, 7), (65, 1, 31)]
        for (m, n, k) in shapes { for ta in [false, true] { for tb in [false, true] {
            all.append(Case(m: m, n: n, k: k, transA: ta, transB: tb))
        } } }
        return all
    }()

    @Test("sgemm equals the triple loop", arguments: cases)
    func sgemmMatchesReference(c: Case) {
        let a = Tensor.randn(c.transA ? [c.k, c.m] : [c.m, c.k], seed: 1)
        let b = Tensor.randn(c.transB ? [c.n, c.k] : [c.k, c.n], seed: 2)
        let c0 = Tensor.randn([c.m, c.n], seed: 3)
        let expected = c0.copy()
        sgemmReference(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: 0.5, a: a.data,
                       lda: a.size(1), b: b.data, ldb: b.size(1), beta: 0.25, c: expected.data, ldc: c.n)
        for pool in testPools {
            let out = c0.copy()
            sgemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: 0.5, a: a.data, lda: a.size(1),
                  b: b.data, ldb: b.size(1), beta: 0.25, c: out.data, ldc: c.n, pool: pool)
            expectClose(out, expected, tolerance: 1e-6, "\(c) threads \(pool.threadCount)")
        }
    }

    @Test("linear (bias epilogue) equals reference", arguments: [(1, 1, 1), (7, 13, 5), (130, 65, 33), (257, 16, 9)])
    func linearMatchesReference(m: Int, n: Int, k: Int) {
        let x = Tensor.randn([m, k], seed: 4), w = Tensor.randn([n, k], seed: 5), bias = Tensor.randn([n], seed: 6)
        for withBias in [false, true] {
            let expected = Tensor(zeros: [m, n])
            linearReference(m: m, n: n, k: k, x: x.data, ldx: k, weight: w.data, bias: withBias ? bias.data : nil,
                            y: expected.data, ldy: n)
            for pool in testPools {
                let out = pool.withCurrent { linear(x, weight: w, bias: withBias ? bias : nil) }
                expectClose(out, expected, tolerance: 1e-6, "linear \(m)×\(k)→\(n) bias \(withBias) threads \(pool.threadCount)")
            }
        }
    }

    /// BF16, F16 and INT8 weights (stacked from parts, as fused projections are), odd shapes, any
    /// thread count: the block-widening GEMM equals the reference on the widened weight.
    @Test("linear on narrow weights equals reference", arguments: [(1, 1, 1), (7, 13, 5), (130, 65, 33), (3, 700, 400)])
    func narrowLinear(m: Int, n: Int, k: Int) {
        let x = Tensor.randn([m, k], seed: 4), bias = Tensor.randn([n], seed: 6)
        for element in [WeightElement.bf16, .f16, .int8] {
            let w = Self.stackedWeight(n: n, k: k, element: element)
            #expect(w.residentBytes == n * k * element.byteSize + (element == .int8 ? 4 * n : 0))
            for withBias in [false, true] {
                let expected = Tensor(zeros: [m, n])
                linearReference(m: m, x: x.data, ldx: k, weight: w, bias: withBias ? bias.data : nil, y: expected.data, ldy: n)
                for pool in testPools {
                    let out = pool.withCurrent { linear(x, weight: w, bias: withBias ? bias : nil) }
                    expectClose(out, expected, tolerance: 1e-5, "\(element) \(m)×\(k)→\(n) bias \(withBias) threads \(pool.threadCount)")
                }
            }
        }
    }

    /// A random n×k weight narrowed to `element`, stacked from two parts as fused projections are.
    static func stackedWeight(n: Int, k: Int, element: WeightElement, compute: LinearCompute = .f32) -> WeightMatrix {
        let split = n / 3
        let parts = [0..<split, split..<n].filter { !$0.isEmpty }.map { rows in
            WeightMatrix(narrowing: .randn([rows.count, k], seed: UInt64(rows.lowerBound + 5)), to: element,
                         compute: compute)
        }
        return WeightMatrix.stacked(parts)
    }

    /// INT8 weights with the input quantized per token (stacked parts, odd shapes, 1–4 threads, with
    /// and without bias): oneDNN's exact s32 sums give the reference's bits, and the Float32 emulation
    /// (CPUs without VNNI/AMX) comes within 1e-5.
    @Test("linear with quantized activations equals reference",
          arguments: [(1, 1, 1), (7, 13, 5), (130, 65, 33), (3, 700, 400), (64, 40, 1152)])
    func int8DynamicLinear(m: Int, n: Int, k: Int) {
        let x = Tensor.randn([m, k], seed: 4), bias = Tensor.randn([n], seed: 6)
        let w = Self.stackedWeight(n: n, k: k, element: .int8, compute: .int8)
        #expect(w.residentBytes == n * k + 8 * n)
        for withBias in [false, true] {
            let expected = Tensor(zeros: [m, n])
            linearInt8DynamicReference(m: m, x: x.data, ldx: k, weight: w, bias: withBias ? bias.data : nil,
                                       y: expected.data, ldy: n)
            for pool in testPools {
                let fast = pool.withCurrent { linear(x, weight: w, bias: withBias ? bias : nil) }
                let what = "\(m)×\(k)→\(n) bias \(withBias) threads \(pool.threadCount)"
                if Int8Kernels.fast {
                    #expect(fast.scalars == expected.scalars, "oneDNN \(what)")
                }
                let emulated = Tensor(zeros: [m, n])
                linearInt8Dynamic(m: m, x: x.data, ldx: k, weight: w, bias: withBias ? bias.data : nil,
                                  y: emulated.data, ldy: n, oneDNN: false, pool: pool)
                expectClose(emulated, expected, tolerance: 1e-5, "emulated \(what)")
            }
        }
        // Against the unquantized product: the error of rounding both operands to 8 bits.
        let exact = Tensor(zeros: [m, n])
        linearReference(m: m, x: x.data, ldx: k, weight: w, bias: nil, y: exact.data, ldy: n)
        let quantized = linear(x, weight: w)
        expectClose(quantized, exact, tolerance: 0.02, "8-bit activations \(m)×\(k)→\(n)")
    }

    /// BF16 weights computing in BF16 (stacked parts, odd shapes, 1–3 threads, with and without bias):
    /// oneDNN's Float32 sums and the Float32 emulation both equal the reference on the rounded input.
    @Test("BF16 linear (input rounded to BF16) equals reference",
          arguments: [(1, 1, 1), (7, 13, 5), (130, 65, 33), (3, 700, 400), (64, 40, 1152)])
    func bf16Linear(m: Int, n: Int, k: Int) {
        let x = Tensor.randn([m, k], seed: 4), bias = Tensor.randn([n], seed: 6)
        let w = Self.stackedWeight(n: n, k: k, element: .bf16, compute: .bf16)
        for withBias in [false, true] {
            let expected = Tensor(zeros: [m, n])
            linearBF16Reference(m: m, x: x.data, ldx: k, weight: w, bias: withBias ? bias.data : nil,
                                y: expected.data, ldy: n)
            for pool in testPools {
                let what = "\(m)×\(k)→\(n) bias \(withBias) threads \(pool.threadCount)"
                let fast = pool.withCurrent { linear(x, weight: w, bias: withBias ? bias : nil) }
                expectClose(fast, expected, tolerance: 1e-5, "default \(what)")
                if BF16Kernels.implementation?.contains("bf16") == true {
                    let oneDNN = Tensor(zeros: [m, n])
                    linearBF16(m: m, x: x.data, ldx: k, weight: w, bias: withBias ? bias.data : nil, y: oneDNN.data,
                               ldy: n, oneDNN: true, pool: pool)
                    expectClose(oneDNN, expected, tolerance: 1e-5, "oneDNN \(what)")
                }
                let emulated = Tensor(zeros: [m, n])
                linearBF16(m: m, x: x.data, ldx: k, weight: w, bias: withBias ? bias.data : nil, y: emulated.data,
                           ldy: n, oneDNN: false, pool: pool)
                expectClose(emulated, expected, tolerance: 1e-5, "emulated \(what)")
            }
        }
        // The input's rounding is what separates it from the Float32 product on the same weight.
        let exact = Tensor(zeros: [m, n])
        linearReference(m: m, x: x.data, ldx: k, weight: w, bias: nil, y: exact.data, ldy: n)
        let rounded = linear(x, weight: w)
        expectClose(rounded, exact, tolerance: 1e-2, "BF16 input \(m)×\(k)→\(n)")
        if k > 1 { #expect(rounded.scalars != exact.scalars, "the input must be rounded") }
    }

    /// What lets a served request get the same bits alone as batched under `--dtype bf16`.
    @Test("BF16 linear: a row's result does not depend on the rows computed with it or on the threads",
          arguments: [(384, 128), (768, 128), (128, 512), (16, 256), (1152, 1152), (300, 40)])
    func bf16RowInvariance(n: Int, k: Int) {
        let x = Tensor.randn([300, k], seed: 4)
        let w = WeightMatrix(narrowing: .randn([n, k], seed: 5), to: .bf16, compute: .bf16)
        // Both paths: oneDNN's (where it has a BF16 kernel, whether or not it is the default) and the
        // Float32 GEMM's.
        for oneDNN in [false] + (BF16Kernels.implementation?.contains("bf16") == true ? [true] : []) {
            let all = Tensor(zeros: [300, n])
            linearBF16(m: 300, x: x.data, ldx: k, weight: w, bias: nil, y: all.data, ldy: n, oneDNN: oneDNN,
                       pool: testPools[0])
            for pool in testPools {
                for (start, count) in [(0, 300), (0, 1), (2, 2), (7, 9), (32, 32), (100, 64), (13, 200), (299, 1)] {
                    let part = Tensor(zeros: [count, n])
                    linearBF16(m: count, x: x.data + start * k, ldx: k, weight: w, bias: nil, y: part.data, ldy: n,
                               oneDNN: oneDNN, pool: pool)
                    let differ = (0..<(count * n)).filter { part.data[$0] != all.data[start * n + $0] }.count
                    let rows = "rows \(start)..<\(start + count)"
                    #expect(differ == 0, "oneDNN \(oneDNN) \(rows), \(pool.threadCount) threads: \(differ) differ")
                }
            }
        }
    }

    @Test("per-token quantization: every value within half a step of its row's scale; a zero row stays zero")
    func tokenQuantization() {
        let x = Tensor.randn([4, 37], seed: 12)
        for j in 0..<37 { x.data[2 * 37 + j] = 0 }
        var q = [UInt8](repeating: 0, count: 4 * 37), scales = [Float](repeating: 0, count: 4)
        quantizeRows(m: 4, k: 37, x: x.data, ldx: 37, q: &q, scales: &scales)
        for r in 0..<4 {
            let largest = (0..<37).map { abs(x.data[r * 37 + $0]) }.max()!
            #expect(r == 2 ? scales[r] == 1 : abs(scales[r] - largest / 127) <= 1e-7 * largest)
            for c in 0..<37 {
                let back = Float(Int32(q[r * 37 + c]) - 128) * scales[r]
                #expect(abs(back - x.data[r * 37 + c]) <= scales[r] / 2 * 1.0001, "row \(r) column \(c)")
            }
        }
    }

    @Test("narrowing: BF16 rounds to nearest even, INT8 keeps each row within half a step of its scale")
    func narrowing() {
        #expect(bfloat16Bits(1.0) == 0x3F80 && bfloat16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80
                && bfloat16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82 && bfloat16Bits(-2.5) == 0xC020)
        let w = Tensor.randn([5, 37], seed: 9)
        let (q, scales) = narrowed(w.data, count: w.count, columns: 37, to: .int8)
        for r in 0..<5 {
            let largest = (0..<37).map { abs(w.data[r * 37 + $0]) }.max()!
            #expect(abs(scales![r] - largest / 127) <= 1e-7 * largest)
            for c in 0..<37 {
                let back = Float(Int8(bitPattern: q[r * 37 + c])) * scales![r]
                #expect(abs(back - w.data[r * 37 + c]) <= scales![r] / 2 * 1.0001)
            }
        }
    }

    @Test("batched matmul equals per-item products")
    func batchedMatmul() {
        let a = Tensor.randn([3, 17, 9], seed: 7), b = Tensor.randn([9, 5], seed: 8)
        for pool in testPools {
            let out = pool.withCurrent { matmul(a, b) }
            #expect(out.shape == [3, 17, 5])
            for i in 0..<3 {
                let expected = Tensor(zeros: [17, 5])
                sgemmReference(transA: false, transB: false, m: 17, n: 5, k: 9, alpha: 1, a: a[i].data, lda: 9,
                               b: b.data, ldb: 5, beta: 0, c: expected.data, ldc: 5)
                expectClose(out[i], expected, tolerance: 1e-6, "batch item \(i) threads \(pool.threadCount)")
            }
        }
    }

    @Test("microkernel equals the triple loop, partial row tiles included; AVX-512 and AVX2 give the same bits",
          arguments: [1, 5, 6, 7, 12, 13, 36])
    func microGemmMatchesReference(m: Int) {
        for (n, k) in [(16, 1), (32, 7), (48, 64), (16, 129), (96, 33)] {
            let a = Tensor.randn([m, k], seed: 9), b = Tensor.randn([k, n], seed: 10)
            // Repack B into 16-column panels of [k × 16].
            let panels = Tensor(zeros: [n * k])
            for p in 0..<(n / 16) { for r in 0..<k { for c in 0..<16 { panels.data[p * 16 * k + r * 16 + c] = b.data[r * n + p * 16 + c] } } }
            let c0 = Tensor.randn([m, n], seed: 11)
            for accumulate in [false, true] {
                let expected = c0.copy()
                sgemmReference(transA: false, transB: false, m: m, n: n, k: k, alpha: 0.75, a: a.data, lda: k,
                               b: b.data, ldb: n, beta: accumulate ? 1 : 0, c: expected.data, ldc: n)
                var results: [(Tensor, [F8])] = []
                for avx512 in [false] + (MicroKernels.avx512 ? [true] : []) {
                    let out = c0.copy(), pad = Tensor(zeros: [6 * k])
                    var lanes = [F8](repeating: F8(repeating: -.infinity), count: m)
                    microGemm(m: m, n: n, k: k, alpha: 0.75, a: a.data, lda: k, b: panels.data, ldb: 16,
                              panelStride: 16 * k, c: out.data, ldc: n, accumulate: accumulate, rowPad: pad.data,
                              laneMax: &lanes, avx512: avx512)
                    expectClose(out, expected, tolerance: 1e-6,
                                "micro \(m)×\(k)·\(k)×\(n) accumulate \(accumulate) avx512 \(avx512)")
                    results.append((out, lanes))
                }
                if let (wide, wideLanes) = results.dropFirst().first {
                    #expect(wide.scalars == results[0].0.scalars, "AVX-512 bits \(m)×\(k)·\(k)×\(n)")
                    if !accumulate { #expect(wideLanes == results[0].1, "AVX-512 lane maxima \(m)×\(k)·\(k)×\(n)") }
                }
            }
        }
    }
}
