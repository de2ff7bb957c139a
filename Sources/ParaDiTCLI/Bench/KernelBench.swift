import CParaDiTBLAS
import Foundation
import ParaDiTTensor

/// `paradit bench kernels`: the engine's kernels on the shapes DiTs use, beside raw cblas.
struct KernelBenchmark {
    var threads: Int
    var warmup: Int
    var runs: Int
    var attentionLengths: [Int]
    var suites: Set<Suite> = Set(Suite.allCases)

    enum Suite: String, CaseIterable, Codable {
        case gemm, attention, memory
    }

    struct GEMMCase: Codable {
        var m, n, k: Int
        var engine: Timing, cblas: Timing
        var engineGflops, cblasGflops: Double
        /// Median over rounds of time(raw cblas) / time(engine): above 1 means the engine is faster.
        var engineOverCblas: Double
    }
    /// x[m×k] · Wᵀ as the models call it: Float32 weights, BF16 compute (`--dtype bf16`), and INT8
    /// weights with per-token 8-bit inputs (`int8-dynamic`), alternating round by round.
    struct LinearCase: Codable {
        var m, n, k: Int
        var f32: Timing, bf16: Timing, int8Dynamic: Timing
        var f32Gflops, bf16Gflops, int8Gflops: Double
        /// Medians over rounds of time(Float32) / time(BF16) and time(Float32) / time(int8-dynamic).
        var bf16OverF32, int8OverF32: Double
    }
    /// Float32 attention and BF16 attention (`--dtype bf16`), alternating round by round.
    struct AttentionCase: Codable {
        var seqLen, heads, headDim: Int
        var timing: Timing, bf16: Timing
        var gflops, bf16Gflops: Double
        /// This case's GFLOP/s over the best engine GEMM GFLOP/s of the same run (when GEMM ran).
        var fractionOfGemm: Double?
        /// Median over rounds of time(Float32) / time(BF16).
        var bf16OverF32: Double
    }
    struct MemoryCase: Codable {
        var kernel: String
        var shape: [Int]
        var timing: Timing
        var gbPerSecond: Double
    }
    struct Report: Codable {
        var suite = "kernels"
        var machine: MachineInfo
        var warmup, runs: Int
        var gemm: [GEMMCase]
        /// oneDNN's BF16 and 8-bit kernels, or how the products run without them; attention's
        /// microkernel and what runs BF16 attention.
        var bf16Kernel: String, int8Kernel: String, attentionKernel: String, bf16AttentionKernel: String
        var linear: [LinearCase]
        var attention: [AttentionCase]
        var memoryBound: [MemoryCase]
    }

    static let gemmShapes = [(4096, 1152, 1152), (1024, 4608, 1152), (4096, 4608, 1152)]

    func run(progress: (String) -> Void) -> Report {
        let pool = ThreadPool(threads: threads)
        return pool.withCurrent {
            let gemm: [GEMMCase] = !suites.contains(.gemm) ? [] : Self.gemmShapes.map { m, n, k in
                progress("gemm \(m)×\(k)·\(k)×\(n)")
                return gemmCase(m: m, n: n, k: k, pool: pool)
            }
            let linear: [LinearCase] = !suites.contains(.gemm) ? [] : Self.gemmShapes.map { m, n, k in
                progress("linear f32, bf16, int8-dynamic \(m)×\(k)·\(k)×\(n)")
                return linearCase(m: m, n: n, k: k, pool: pool)
            }
            let bestGemm = gemm.map(\.engineGflops).max()
            var attention: [AttentionCase] = []
            for seqLen in suites.contains(.attention) ? attentionLengths : [] {
                for headDim in [64, 128] {
                    progress("attention L=\(seqLen) d=\(headDim)")
                    attention.append(attentionCase(seqLen: seqLen, heads: 16, headDim: headDim, bestGemm: bestGemm, pool: pool))
                }
            }
            if suites.contains(.memory) { progress("layernorm, gelu, silu") }
            func kernel(_ fast: Bool, _ name: String?) -> String {
                fast ? name ?? ""
                    : "the Float32 GEMM on the same narrowed operands (oneDNN offers \(name ?? "nothing"))"
            }
            return Report(machine: .current(threads: threads), warmup: warmup, runs: runs, gemm: gemm,
                          bf16Kernel: kernel(BF16Kernels.fast, BF16Kernels.implementation),
                          int8Kernel: kernel(Int8Kernels.fast, Int8Kernels.implementation),
                          attentionKernel: MicroKernels.name,
                          bf16AttentionKernel: "the Float32 microkernel on operands rounded to BF16", linear: linear,
                          attention: attention,
                          memoryBound: suites.contains(.memory) ? memoryCases(pool: pool) : [])
        }
    }

    func gemmCase(m: Int, n: Int, k: Int, pool: ThreadPool) -> GEMMCase {
        let a = Tensor.randn([m, k], seed: 1), b = Tensor.randn([k, n], seed: 2), c = Tensor(zeros: [m, n])
        let flops = 2.0 * Double(m * n * k)
        let engineRun = {
            sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a.data, lda: k, b: b.data, ldb: n,
                  beta: 0, c: c.data, ldc: n, pool: pool)
        }
        // Raw cblas with OpenBLAS's own threading at the same thread count.
        let rawRun = {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a.data, Int32(k),
                        b.data, Int32(n), 0, c.data, Int32(n))
        }
        // Rounds of one engine run and one raw run, so drift in machine speed hits both alike; the
        // ratio is the median of the per-round ratios. OpenBLAS's idle threads spin for a while
        // after each call, so each switch waits for them to park before timing the engine.
        var engineTimes: [Double] = [], rawTimes: [Double] = []
        for round in 0..<(warmup + runs) {
            let e = measure(warmup: 0, runs: 1, engineRun).median
            let r = BLAS.withThreads(threads) { measure(warmup: 0, runs: 1, rawRun).median }
            Thread.sleep(forTimeInterval: 0.25)
            if round >= warmup { engineTimes.append(e); rawTimes.append(r) }
        }
        let engine = timing(engineTimes), raw = timing(rawTimes)
        let ratio = median(zip(rawTimes, engineTimes).map { $0 / $1 })
        withExtendedLifetime((a, b, c)) {}
        let e = flops / engine.median / 1e9, r = flops / raw.median / 1e9
        return GEMMCase(m: m, n: n, k: k, engine: engine, cblas: raw, engineGflops: e, cblasGflops: r,
                        engineOverCblas: ratio)
    }

    func linearCase(m: Int, n: Int, k: Int, pool: ThreadPool) -> LinearCase {
        let x = Tensor.randn([m, k], seed: 1), w = Tensor.randn([n, k], seed: 2), y = Tensor(zeros: [m, n])
        let b = WeightMatrix(narrowing: w, to: .bf16, compute: .bf16)
        let q = WeightMatrix(narrowing: w, to: .int8, compute: .int8)
        var times: [[Double]] = [[], [], []]
        for round in 0..<(warmup + runs) {
            let t = [
                measure(warmup: 0, runs: 1) {
                    linear(m: m, n: n, k: k, x: x.data, ldx: k, weight: w.data, bias: nil, y: y.data, ldy: n,
                           pool: pool)
                }.median,
                measure(warmup: 0, runs: 1) {
                    linearBF16(m: m, x: x.data, ldx: k, weight: b, bias: nil, y: y.data, ldy: n, pool: pool)
                }.median,
                measure(warmup: 0, runs: 1) {
                    linearInt8Dynamic(m: m, x: x.data, ldx: k, weight: q, bias: nil, y: y.data, ldy: n, pool: pool)
                }.median,
            ]
            if round >= warmup { for i in 0..<3 { times[i].append(t[i]) } }
        }
        withExtendedLifetime((x, w, y, b, q)) {}
        let flops = 2.0 * Double(m * n * k), t = times.map(timing)
        return LinearCase(m: m, n: n, k: k, f32: t[0], bf16: t[1], int8Dynamic: t[2],
                          f32Gflops: flops / t[0].median / 1e9, bf16Gflops: flops / t[1].median / 1e9,
                          int8Gflops: flops / t[2].median / 1e9,
                          bf16OverF32: median(zip(times[0], times[1]).map { $0 / $1 }),
                          int8OverF32: median(zip(times[0], times[2]).map { $0 / $1 }))
    }

    func attentionCase(seqLen: Int, heads: Int, headDim: Int, bestGemm: Double?, pool: ThreadPool) -> AttentionCase {
        let width = heads * headDim
        let q = Tensor.randn([seqLen, width], seed: 3), k = Tensor.randn([seqLen, width], seed: 4)
        let v = Tensor.randn([seqLen, width], seed: 5), o = Tensor(zeros: [seqLen, width])
        let lse = Tensor(zeros: [heads, seqLen])
        var times: [[Double]] = [[], []]
        for round in 0..<(warmup + runs) {
            let t = [AttentionPrecision.f32, .bf16].map { precision in
                measure(warmup: 0, runs: 1) {
                    attention(batch: 1, heads: heads, lq: seqLen, lk: seqLen, headDim: headDim, q: q.data, ldq: width,
                              k: k.data, ldk: width, v: v.data, ldv: width, out: o.data, ldo: width, lse: lse.data,
                              scale: 1 / Float(headDim).squareRoot(), precision: precision, pool: pool)
                }.median
            }
            if round >= warmup { for i in 0..<2 { times[i].append(t[i]) } }
        }
        withExtendedLifetime((q, k, v, o, lse)) {}
        let flops = 4.0 * Double(heads) * Double(seqLen) * Double(seqLen) * Double(headDim), t = times.map(timing)
        let gflops = flops / t[0].median / 1e9
        return AttentionCase(seqLen: seqLen, heads: heads, headDim: headDim, timing: t[0], bf16: t[1], gflops: gflops,
                             bf16Gflops: flops / t[1].median / 1e9, fractionOfGemm: bestGemm.map { gflops / $0 },
                             bf16OverF32: median(zip(times[0], times[1]).map { $0 / $1 }))
    }

    func memoryCases(pool: ThreadPool) -> [MemoryCase] {
        let shape = [4096, 1152]
        let x = Tensor.randn(shape, seed: 6), y = Tensor(zeros: shape)
        let w = Tensor.randn([1152], seed: 7), b = Tensor.randn([1152], seed: 8)
        let bytes = Double(2 * x.count * 4)  // one read and one write per element
        let cases: [(String, () -> Void)] = [
            ("layernorm", { layerNorm(rows: 4096, dim: 1152, x: x.data, weight: w.data, bias: b.data, eps: 1e-6, out: y.data, pool: pool) }),
            ("gelu-tanh", { gelu(count: x.count, x.data, out: y.data, approximation: .tanh, pool: pool) }),
            ("gelu-erf", { gelu(count: x.count, x.data, out: y.data, approximation: .none, pool: pool) }),
            ("silu", { silu(count: x.count, x.data, out: y.data, pool: pool) }),
        ]
        let result = cases.map { name, body in
            let t = measure(warmup: warmup, runs: runs, body)
            return MemoryCase(kernel: name, shape: shape, timing: t, gbPerSecond: bytes / t.median / 1e9)
        }
        withExtendedLifetime((x, y, w, b)) {}
        return result
    }

    static func tables(_ r: Report) -> [ResultTable] {
        var g = ResultTable(title: "GEMM (m×k · k×n), GFLOP/s", columns: ["shape", "engine", "raw cblas", "engine/cblas", "engine ms"])
        for c in r.gemm {
            g.add(["\(c.m)×\(c.k)·\(c.k)×\(c.n)", fmt(c.engineGflops), fmt(c.cblasGflops), fmt(c.engineOverCblas, digits: 3),
                   fmt(c.engine.median * 1e3, digits: 2)])
        }
        var q = ResultTable(title: "Linear x·Wᵀ, G(FL)OP/s — bf16: \(r.bf16Kernel); int8-dynamic: \(r.int8Kernel)",
                            columns: ["shape", "f32", "bf16", "int8-dynamic", "bf16/f32", "int8/f32"])
        for c in r.linear {
            q.add(["\(c.m)×\(c.k)·\(c.k)×\(c.n)", fmt(c.f32Gflops), fmt(c.bf16Gflops), fmt(c.int8Gflops),
                   fmt(c.bf16OverF32, digits: 3), fmt(c.int8OverF32, digits: 3)])
        }
        var a = ResultTable(
            title: "Fused attention (batch 1, self-attention, with LSE), \(r.attentionKernel) microkernel — "
                + "bf16: \(r.bf16AttentionKernel)",
            columns: ["L", "heads", "head dim", "f32 ms", "f32 GFLOP/s", "of best GEMM", "bf16 ms",
                      "bf16 GFLOP/s", "bf16/f32"])
        for c in r.attention {
            a.add(["\(c.seqLen)", "\(c.heads)", "\(c.headDim)", fmt(c.timing.median * 1e3, digits: 2), fmt(c.gflops),
                   c.fractionOfGemm.map { fmt($0 * 100) + "%" } ?? "-", fmt(c.bf16.median * 1e3, digits: 2),
                   fmt(c.bf16Gflops), fmt(c.bf16OverF32, digits: 3)])
        }
        var m = ResultTable(title: "Memory-bound kernels", columns: ["kernel", "shape", "µs", "GB/s"])
        for c in r.memoryBound {
            m.add([c.kernel, c.shape.map(String.init).joined(separator: "×"), fmt(c.timing.median * 1e6), fmt(c.gbPerSecond)])
        }
        return [g, q, a, m].filter { !$0.rows.isEmpty }
    }
}
