import Foundation
import ParaDiTTensor
import Testing

@Suite("Positional embeddings and RoPE")
struct PositionTests {
    @Test("timestep embedding equals the Double formula", arguments: [(8, true, Float(0)), (9, false, 1), (256, true, 0), (1152, false, 1)])
    func timestep(dim: Int, flip: Bool, shift: Float) {
        let ts: [Float] = [0, 1, 17.5, 999]
        let out = timestepEmbedding(ts, dim: dim, flipSinToCos: flip, downscaleFreqShift: shift)
        let ref = timestepEmbeddingReference(ts, dim: dim, flipSinToCos: flip, downscaleFreqShift: shift)
        #expect(out.shape == [4, dim])
        for (n, row) in ref.enumerated() {
            for j in 0..<dim {
                // Arguments up to 999 rad in float32 carry ~1e-4 of rounding, as in torch.
                #expect(abs(Double(out[index: [n, j]]) - row[j]) < 2e-4, "t=\(ts[n]) j=\(j)")
            }
        }
        if dim % 2 == 1 { #expect(out[index: [3, dim - 1]] == 0) }
        // t = 0: sin halves are 0 and cos halves 1.
        #expect(out[index: [0, flip ? dim / 2 : 0]] == 0 && out[index: [0, flip ? 0 : dim / 2]] == 1)
    }

    @Test("2-D sincos embedding equals per-token formula, square and non-square grids",
          arguments: [(4, 4, Float(4), Float(1)), (3, 5, 16, 1), (8, 6, 2, 0.5)])
    func sincos2D(h: Int, w: Int, base: Float, interp: Float) {
        let tokens = Array(0..<(h * w)).reversed().map { $0 }
        let out = sincosPositionEmbedding2D(embedDim: 32, gridHeight: h, gridWidth: w, baseSize: base,
                                            interpolationScale: interp, tokens: tokens)
        for (n, t) in tokens.enumerated() {
            let ref = sincosPositionEmbedding2DReference(embedDim: 32, gridHeight: h, gridWidth: w, baseSize: base,
                                                         interpolationScale: interp, token: t)
            for j in 0..<32 { #expect(abs(Double(out[index: [n, j]]) - ref[j]) < 1e-6) }
        }
    }

    @Test("RoPE (Flux axes) equals complex rotation from the ids", arguments: [[16, 56, 56], [2, 4, 2], [8]])
    func rope(axesDim: [Int]) {
        let tokens = 13, heads = 3, headDim = axesDim.reduce(0, +)
        let ids = Tensor(zeros: [tokens, axesDim.count])
        for t in 0..<tokens { for a in 0..<axesDim.count { ids.data[t * axesDim.count + a] = Float((t * 7 + a * 3) % 11) } }
        let (cos, sin) = ropeFrequencies(ids: ids.data, tokens: tokens, axesDim: axesDim, theta: 10000)
        // Strided rows, as q and k come out of a fused projection.
        let ld = heads * headDim + 5
        let x = Tensor.randn([tokens, ld], seed: 1)
        let ref = Tensor(zeros: [tokens, heads, headDim])
        for t in 0..<tokens { (ref.data + t * heads * headDim).update(from: x.data + t * ld, count: heads * headDim) }
        applyRope(tokens: tokens, heads: heads, headDim: headDim, x: x.data, ldx: ld, cos: cos.data, sin: sin.data)
        applyRopeReference(tokens: tokens, heads: heads, headDim: headDim, x: ref.data, ids: ids.data, axesDim: axesDim, theta: 10000)
        let got = Tensor(zeros: ref.shape)
        for t in 0..<tokens { (got.data + t * heads * headDim).update(from: x.data + t * ld, count: heads * headDim) }
        expectClose(got, ref, tolerance: 1e-6, "rope \(axesDim)")
    }
}
