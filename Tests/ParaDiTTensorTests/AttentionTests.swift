import Foundation
import ParaDiTTensor
import Testing

@Suite("Fused attention conformance")
struct AttentionTests {
    struct Case: CustomStringConvertible, Sendable {
        var batch, heads, lq, lk, headDim: Int
        var description: String { "b\(batch) h\(heads) Lq\(lq) Lk\(lk) d\(headDim)" }
    }

    static let cases: [Case] = [
        Case(batch: 1, heads: 1, lq: 1, lk: 1, headDim: 1),
        Case(batch: 1, heads: 2, lq: 7, lk: 9, headDim: 8),
        Case(batch: 2, heads: 3, lq: 17, lk: 129, headDim: 7),
        Case(batch: 1, heads: 2, lq: 129, lk: 17, headDim: 64),
        Case(batch: 2, heads: 1, lq: 33, lk: 600, headDim: 72),   // several key blocks, padded head dim
        Case(batch: 1, heads: 4, lq: 300, lk: 300, headDim: 128),  // several query blocks
        Case(batch: 1, heads: 1, lq: 5, lk: 1100, headDim: 16),
    ]

    /// Runs the fused kernel and the reference on the same random inputs; returns (out, lse, refOut, refLse).
    func run(_ c: Case, mask: Tensor? = nil, maskRowStride: Int = 0, pool: ThreadPool,
             blocking: AttentionBlocking = AttentionBlocking(),
             precision: AttentionPrecision = .f32) -> (Tensor, Tensor, Tensor, Tensor) {
        // Pad the row strides beyond heads·headDim, as a fused QKV buffer has them.
        let width = c.heads * c.headDim, ldq = width + 3, ldk = width + 5, ldv = width + 1, ldo = width + 2
        let q = Tensor.randn([c.batch * c.lq, ldq], seed: 1), k = Tensor.randn([c.batch * c.lk, ldk], seed: 2)
        let v = Tensor.randn([c.batch * c.lk, ldv], seed: 3)
        let out = Tensor(zeros: [c.batch * c.lq, ldo]), ref = Tensor(zeros: [c.batch * c.lq, ldo])
        let lse = Tensor(zeros: [c.batch, c.heads, c.lq]), refLse = Tensor(zeros: [c.batch, c.heads, c.lq])
        let m = mask.map { AttentionMask(data: $0.data, batchStride: $0.count / c.batch, rowStride: maskRowStride) }
        let scale = 1 / Float(c.headDim).squareRoot()
        attention(batch: c.batch, heads: c.heads, lq: c.lq, lk: c.lk, headDim: c.headDim, q: q.data, ldq: ldq,
                  k: k.data, ldk: ldk, v: v.data, ldv: ldv, out: out.data, ldo: ldo, lse: lse.data, scale: scale,
                  mask: m, precision: precision, blocking: blocking, pool: pool)
        attentionReference(batch: c.batch, heads: c.heads, lq: c.lq, lk: c.lk, headDim: c.headDim, q: q.data, ldq: ldq,
                           k: k.data, ldk: ldk, v: v.data, ldv: ldv, out: ref.data, ldo: ldo, lse: refLse.data,
                           scale: scale, mask: m, precision: precision)
        return (out, lse, ref, refLse)
    }

    @Test("bf16: the reference's rounding of q, k, v and P; Float32 sums; a BF16 distance from Float32",
          arguments: cases)
    func bf16MatchesReference(c: Case) {
        for pool in testPools {
            let (out, lse, ref, refLse) = run(c, pool: pool, precision: .bf16)
            let f32 = run(c, pool: pool).0
            expectClose(out, ref, tolerance: 2e-5, "\(c) bf16 out, threads \(pool.threadCount)")
            expectClose(lse, refLse, tolerance: 1e-5, "\(c) bf16 lse, threads \(pool.threadCount)")
            let fromF32 = relativeL2(out, f32)
            #expect(fromF32 < 1e-2, "\(c): bf16 is \(fromF32) from f32")
            if c.lq * c.heads * c.headDim >= 64 {
                #expect(fromF32 > 1e-4, "\(c): bf16 only \(fromF32) from f32: not rounded?")
            }
        }
    }

    @Test("bf16: a NaN query (any payload) gives its row NaN and leaves the others finite")
    func bf16NaN() {
        let (l, h, d) = (20, 2, 16)
        let q = Tensor.randn([1, l, h, d], seed: 1), k = Tensor.randn([1, l, h, d], seed: 2),
            v = Tensor.randn([1, l, h, d], seed: 3)
        q.data[3 * h * d] = Float(bitPattern: 0x7FFF_FFFF)
        let out = Tensor(uninitialized: [1, l, h, d])
        attention(batch: 1, heads: h, lq: l, lk: l, headDim: d, q: q.data, ldq: h * d, k: k.data, ldk: h * d, v: v.data,
                  ldv: h * d, out: out.data, ldo: h * d, lse: nil, scale: 0.25, precision: .bf16)
        #expect((0..<d).allSatisfy { out.data[3 * h * d + $0].isNaN }, "the NaN query's head")
        #expect((0..<(l * h * d)).filter { $0 / (h * d) != 3 }.allSatisfy { out.data[$0].isFinite }, "the other rows")
    }

    @Test("BF16 rounding: the vector paths equal bfloat16Bits (ties to even, NaN kept, ±inf, subnormals)")
    func bfloat16Rounding() {
        var values: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .nan, -.nan, .greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000),
                               Float(bitPattern: 0x7FFF_FFFF), Float(bitPattern: 0x7F7F_FFFF),
                               Float(bitPattern: 0x0000_8000)]
        values += Tensor.randn([45], seed: 11).scalars.map { $0 * 1e3 }
        let x = Tensor(shape: [values.count], values: values)
        roundToBFloat16(x.data, count: x.count)
        var bits = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer {
            roundRowsToBFloat16(m: 1, k: $0.count, x: $0.baseAddress!, ldx: $0.count, out: &bits)
        }
        for (i, v) in values.enumerated() {
            let expected = bfloat16Bits(v)
            #expect(bits[i] == expected, "roundRowsToBFloat16(\(v)): \(bits[i]) vs \(expected)")
            let rounded = x.data[i], wanted = Float(bitPattern: UInt32(expected) << 16)
            #expect(rounded.bitPattern == wanted.bitPattern || (rounded.isNaN && wanted.isNaN), "roundToBFloat16(\(v))")
        }
        #expect(Float(bitPattern: UInt32(bits[12]) << 16).isNaN, "a NaN whose low bits would carry must stay NaN")
        #expect(bits[10] == 0x3F80 && bits[11] == 0x3F82, "ties go to even")
    }

    @Test("equals the reference, any shape", arguments: cases)
    func matchesReference(c: Case) {
        for pool in testPools {
            let (out, lse, ref, refLse) = run(c, pool: pool)
            expectClose(out, ref, tolerance: 2e-6, "\(c) out, threads \(pool.threadCount)")
            expectClose(lse, refLse, tolerance: 1e-6, "\(c) lse, threads \(pool.threadCount)")
        }
    }

    @Test("small blocks: many query and key blocks give the same result")
    func smallBlocks() {
        let c = Case(batch: 1, heads: 2, lq: 50, lk: 70, headDim: 24)
        let (out, lse, ref, refLse) = run(c, pool: testPools[1], blocking: AttentionBlocking(queryBlock: 7, keyBlock: 16))
        expectClose(out, ref, tolerance: 2e-6, "blocked out")
        expectClose(lse, refLse, tolerance: 1e-6, "blocked lse")
    }

    @Test("key-padding mask: masked keys get no weight; fully masked rows give 0 and lse −inf")
    func keyPaddingMask() {
        let c = Case(batch: 2, heads: 2, lq: 11, lk: 40, headDim: 16)
        let mask = Tensor(zeros: [2, 40])
        for j in 30..<40 { mask.data[j] = -.infinity }          // sample 0: last 10 keys padded
        for j in 0..<40 { mask.data[40 + j] = -.infinity }      // sample 1: everything masked
        let (out, lse, ref, refLse) = run(c, mask: mask, maskRowStride: 0, pool: testPools[1],
                                          blocking: AttentionBlocking(queryBlock: 6, keyBlock: 16))
        expectClose(out, ref, tolerance: 2e-6, "masked out")
        let width = c.heads * c.headDim + 2
        for i in 0..<c.lq { for d in 0..<(c.heads * c.headDim) { #expect(out.data[(c.lq + i) * width + d] == 0) } }
        for i in 0..<(c.heads * c.lq) { #expect(lse.data[c.heads * c.lq + i] == -.infinity) }
        for i in 0..<(c.heads * c.lq) { #expect(abs(lse.data[i] - refLse.data[i]) < 1e-5) }
    }

    @Test("full additive mask [B, Lq, Lk]")
    func fullMask() {
        let c = Case(batch: 2, heads: 3, lq: 13, lk: 21, headDim: 8)
        let mask = Tensor.randn([2, 13, 21], seed: 9)
        mask.data[5] = -.infinity
        let (out, lse, ref, refLse) = run(c, mask: mask, maskRowStride: 21, pool: testPools[2])
        expectClose(out, ref, tolerance: 2e-6, "full-mask out")
        expectClose(lse, refLse, tolerance: 1e-6, "full-mask lse")
    }

    @Test("merging attention over two key halves equals attention over all keys", arguments: [1, 16, 37])
    func mergeOfSplitKeys(split: Int) {
        let (b, h, lq, lk, d) = (2, 3, 19, 64, 16)
        let q = Tensor.randn([b, lq, h, d], seed: 4), k = Tensor.randn([b, lk, h, d], seed: 5)
        let v = Tensor.randn([b, lk, h, d], seed: 6)
        let full = attention(q: q, k: k, v: v, returnLSE: true)
        let first = attention(q: q, k: sliceSequence(k, 0..<split), v: sliceSequence(v, 0..<split), returnLSE: true)
        let second = attention(q: q, k: sliceSequence(k, split..<lk), v: sliceSequence(v, split..<lk), returnLSE: true)
        attentionMerge(batch: b, heads: h, lq: lq, headDim: d, out: first.out.data, ldo: h * d, lse: first.lse!.data,
                       part: second.out.data, ldp: h * d, partLse: second.lse!.data)
        expectClose(first.out, full.out, tolerance: 2e-6, "merged out, split \(split)")
        expectClose(first.lse!, full.lse!, tolerance: 1e-6, "merged lse, split \(split)")
    }

    @Test("exp2NonPositive8 is within float noise of exp2 on [−127, 0], exactly 1 at 0 and 0 from −127 down")
    func exp2OfShiftedScores() {
        var worst = 0.0
        for i in 0...127_000 {
            let x = -Float(i) / 1000
            let expected = Foundation.exp2(Double(x))
            if i < 126_000 { worst = max(worst, abs(Double(exp2NonPositive8(F8(repeating: x))[0]) - expected) / expected) }
        }
        #expect(worst < 2.5e-7, "exp2NonPositive8 worst relative error \(worst)")
        #expect(exp2NonPositive8(F8(repeating: 0))[0] == 1)
        for x: Float in [-127, -200, -.infinity] { #expect(exp2NonPositive8(F8(repeating: x))[0] == 0) }
        #expect(exp2NonPositive8(F8(repeating: .nan))[0].isNaN)
    }

    @Test("tensor-level attention checks shapes and defaults the scale to 1/√d")
    func tensorLevel() {
        let q = Tensor.randn([1, 5, 2, 8], seed: 7), k = Tensor.randn([1, 6, 2, 8], seed: 8), v = Tensor.randn([1, 6, 2, 8], seed: 9)
        let (out, _) = attention(q: q, k: k, v: v)
        let ref = Tensor(zeros: [1, 5, 2, 8])
        attentionReference(batch: 1, heads: 2, lq: 5, lk: 6, headDim: 8, q: q.data, ldq: 16, k: k.data, ldk: 16,
                           v: v.data, ldv: 16, out: ref.data, ldo: 16, lse: nil, scale: 1 / 8.0.squareRoot().float)
        expectClose(out, ref, tolerance: 2e-6, "tensor attention")
    }
}

extension Double { var float: Float { Float(self) } }
