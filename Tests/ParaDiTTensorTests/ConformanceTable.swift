import Foundation
import ParaDiTTensor
import Testing

/// One row of the conformance table: a tensor-level operation (the API the models call) on
/// seeded inputs of one element type and size, against its naive reference on the same inputs.
/// As in ggml's test-backend-ops, a new element type or backend runs the same table.
struct OpCase: CustomStringConvertible, Sendable {
    var op: String
    var sizes: [Int]
    var dtype: DType
    var tolerance: Double
    var run: @Sendable (DType) -> (fast: Tensor, reference: Tensor)

    var description: String { "\(op) \(sizes.map(String.init).joined(separator: "×")) \(dtype)" }
}

/// Seeded input of `dtype` (the storage element type under test). Under `Poison.$inputs` the
/// first input a row draws gets a NaN in its middle element.
func input(_ shape: [Int], seed: UInt64, dtype: DType, std: Float = 1) -> Tensor {
    let t = Tensor.randn(shape, seed: seed, std: std)
    if let poison = Poison.inputs, !poison.done, t.count > 0 {
        t.data[t.count / 2] = .nan
        poison.done = true
    }
    #expect(t.dtype == dtype && t.device == .cpu)
    return t
}

/// A tensor filled by a reference kernel writing through its pointer.
func reference(_ shape: [Int], _ body: (UnsafeMutablePointer<Float>) -> Void) -> Tensor {
    let out = Tensor(zeros: shape)
    body(out.data)
    return out
}

final class Poison: @unchecked Sendable {
    var done = false
    @TaskLocal static var inputs: Poison?
}

enum ConformanceTable {
    static func rows(_ dtype: DType) -> [OpCase] {
        var rows: [OpCase] = []
        func add(_ op: String, _ sizes: [Int], _ tolerance: Double, _ run: @escaping @Sendable (DType) -> (Tensor, Tensor)) {
            rows.append(OpCase(op: op, sizes: sizes, dtype: dtype, tolerance: tolerance, run: { let r = run($0); return (r.0, r.1) }))
        }
        for (m, k, n) in [(1, 1, 1), (7, 9, 17), (33, 64, 129)] {
            add("linear", [m, k, n], 1e-6) { d in
                let x = input([m, k], seed: 1, dtype: d), w = input([n, k], seed: 2, dtype: d), b = input([n], seed: 3, dtype: d)
                return (linear(x, weight: w, bias: b),
                        reference([m, n]) { linearReference(m: m, n: n, k: k, x: x.data, ldx: k, weight: w.data, bias: b.data, y: $0, ldy: n) })
            }
        }
        // Fused q|k|v buffer read through strided views, with and without a key bias.
        for (b, l, lk, h, hd, masked) in [(1, 1, 1, 1, 8, false), (2, 15, 15, 3, 16, false), (2, 9, 17, 2, 64, true)] {
            add("attention(views)\(masked ? "+bias" : "")", [b, l, lk, h, hd], 2e-6) { d in
                let w = h * hd, q = input([b, l, w], seed: 4, dtype: d), kv = input([b, lk, 3 * w], seed: 5, dtype: d)
                let bias = masked ? Tensor(shape: [b, lk], values: (0..<(b * lk)).map { $0 % 5 == 4 ? -.infinity : 0 }) : nil
                let out = Tensor(uninitialized: [b, l, w]), scale = 1 / Float(hd).squareRoot()
                attention(batch: b, heads: h, headDim: hd, q: q.allColumns, k: kv.columns(w..<(2 * w)), v: kv.columns((2 * w)..<(3 * w)),
                          out: out.allColumns, scale: scale, keyBias: bias)
                let ref = reference([b, l, w]) {
                    attentionReference(batch: b, heads: h, lq: l, lk: lk, headDim: hd, q: q.data, ldq: w, k: kv.data + w, ldk: 3 * w,
                                       v: kv.data + 2 * w, ldv: 3 * w, out: $0, ldo: w, lse: nil, scale: scale,
                                       mask: bias.map { AttentionMask(data: $0.data, batchStride: lk, rowStride: 0) })
                }
                return (out, ref)
            }
        }
        for (rows_, dim) in [(1, 1), (9, 17), (64, 1152)] {
            add("layerNorm", [rows_, dim], 1e-5) { d in
                let x = input([rows_, dim], seed: 6, dtype: d, std: 3), w = input([dim], seed: 7, dtype: d), b = input([dim], seed: 8, dtype: d)
                return (layerNorm(x, weight: w, bias: b, eps: 1e-6),
                        reference([rows_, dim]) { layerNormReference(rows: rows_, dim: dim, x: x.data, weight: w.data, bias: b.data, eps: 1e-6, out: $0) })
            }
        }
        for (t, h, hd) in [(1, 1, 8), (7, 3, 16), (33, 4, 64)] {
            add("rmsNormHeads(view)", [t, h, hd], 1e-6) { d in
                let x = input([t, 3 * h * hd], seed: 9, dtype: d), w = input([hd], seed: 10, dtype: d)
                let k = x.copy()
                rmsNormHeads(k.columns((h * hd)..<(2 * h * hd)), headDim: hd, weight: w, eps: 1e-6)
                let ref = x.copy()
                for r in 0..<t { rmsNormReference(rows: h, dim: hd, x: x.data + r * 3 * h * hd + h * hd, weight: w.data, eps: 1e-6,
                                                  out: ref.data + r * 3 * h * hd + h * hd) }
                return (k, ref)
            }
        }
        for (b, t, dim) in [(1, 1, 1), (2, 9, 17), (2, 64, 1152)] {
            add("modulate(view)", [b, t, dim], 1e-6) { d in
                let x = input([b, t, dim], seed: 11, dtype: d), p = input([b, 3 * dim], seed: 12, dtype: d)
                return (modulate(x, scale: p.columns(dim..<(2 * dim)), shift: p.columns(0..<dim)),
                        reference([b, t, dim]) { modulateReference(batch: b, tokens: t, dim: dim, x: x.data, scale: p.data + dim, shift: p.data,
                                                                   paramStride: 3 * dim, out: $0) })
            }
            add("gatedAdd(view)", [b, t, dim], 1e-6) { d in
                let r = input([b, t, dim], seed: 13, dtype: d), y = input([b, t, dim], seed: 14, dtype: d), g = input([b, 2 * dim], seed: 15, dtype: d)
                let out = r.copy()
                gatedAdd(into: out, gate: g.columns(dim..<(2 * dim)), y)
                return (out, reference([b, t, dim]) { gatedAddReference(batch: b, tokens: t, dim: dim, residual: r.data, gate: g.data + dim,
                                                                         paramStride: 2 * dim, y: y.data, out: $0) })
            }
        }
        for n in [1, 9, 20_000] {
            add("gelu-tanh", [n], 1e-6) { d in
                let x = input([n], seed: 16, dtype: d, std: 3)
                return (gelu(x, approximation: .tanh), reference([n]) { geluReference(count: n, x.data, out: $0, approximation: .tanh) })
            }
            add("silu", [n], 1e-6) { d in
                let x = input([n], seed: 17, dtype: d, std: 3)
                return (silu(x), reference([n]) { siluReference(count: n, x.data, out: $0) })
            }
        }
        for (b, t) in [(1, 1), (2, 7), (2, 33)] {
            add("applyRope(view)", [b, t], 1e-6) { d in
                let (h, hd, axes) = (3, 16, [4, 6, 6]), w = h * hd
                let ids = Tensor(shape: [t, 3], values: (0..<t).flatMap { [0, Float($0 / 4), Float($0 % 4)] })
                let qkv = input([b, t, 3 * w], seed: 18, dtype: d)
                let (cos, sin) = ropeFrequencies(ids: ids, axesDim: axes, theta: 10000)
                let fast = qkv.copy()
                applyRope(fast.columns(w..<(2 * w)), batch: b, headDim: hd, cos: cos, sin: sin)
                // The whole buffer is compared: q and v columns must come through untouched.
                let ref = qkv.copy()
                for i in 0..<(b * t) {
                    applyRopeReference(tokens: 1, heads: h, headDim: hd, x: ref.data + i * 3 * w + w, ids: ids.data + (i % t) * 3,
                                       axesDim: axes, theta: 10000)
                }
                return (fast, ref)
            }
        }
        for (shape, dims) in [([2, 3, 4], [2, 0, 1]), ([2, 5, 3, 2, 2, 4], [0, 5, 1, 3, 2, 4]), ([1, 7, 9], [0, 2, 1])] {
            add("permuted", shape, 0) { d in
                let x = input(shape, seed: 19, dtype: d)
                return (permuted(x, dims), permutedReference(x, dims))
            }
        }
        return rows
    }

    static let cases = DType.allCases.flatMap(rows)
}

@Suite("Conformance table: every tensor-level op × element type × size against its reference")
struct ConformanceTableTests {
    @Test("fast path equals the reference on 1, 2 and 3 threads", arguments: ConformanceTable.cases)
    func conform(_ c: OpCase) {
        for pool in testPools {
            let (fast, ref) = pool.withCurrent { c.run(c.dtype) }
            #expect(fast.shape == ref.shape, "\(c): shape \(fast.shape) vs \(ref.shape)")
            expectClose(fast, ref, tolerance: c.tolerance, "\(c) on \(pool.threadCount) threads")
        }
    }

    @Test("a NaN in an input is NaN in the output exactly where the reference (PyTorch's semantics) has it",
          arguments: ConformanceTable.cases)
    func nanPropagates(_ c: OpCase) {
        for pool in testPools {
            let (fast, ref) = Poison.$inputs.withValue(Poison()) { pool.withCurrent { c.run(c.dtype) } }
            let (f, r) = (fast.scalars, ref.scalars)
            #expect(r.contains { $0.isNaN }, "\(c): the poisoned input reaches no output")
            let mismatch = f.indices.first { f[$0].isNaN != r[$0].isNaN }
            #expect(mismatch == nil, "\(c) on \(pool.threadCount) threads: element \(mismatch ?? 0) is \(mismatch.map { f[$0] } ?? 0), reference \(mismatch.map { r[$0] } ?? 0)")
        }
    }
}
