import ParaDiTTensor
import Testing

@Suite("Normalization kernels")
struct NormalizationTests {
    @Test("LayerNorm with and without affine, several eps", arguments: oddSizes + [1152, 5000])
    func layerNormMatches(dim: Int) {
        // A large mean exercises the two-pass variance.
        let x = Tensor.randn([9, dim], seed: 1, std: 2)
        for i in 0..<x.count { x.data[i] += 50 }
        let w = Tensor.randn([dim], seed: 2), b = Tensor.randn([dim], seed: 3)
        for (affine, eps) in [(true, Float(1e-5)), (false, 1e-6), (true, 1e-2)] {
            for pool in testPools {
                let out = Tensor(zeros: x.shape), ref = Tensor(zeros: x.shape)
                layerNorm(rows: 9, dim: dim, x: x.data, weight: affine ? w.data : nil, bias: affine ? b.data : nil,
                          eps: eps, out: out.data, pool: pool)
                layerNormReference(rows: 9, dim: dim, x: x.data, weight: affine ? w.data : nil, bias: affine ? b.data : nil,
                                   eps: eps, out: ref.data)
                // Mean 50, std 2: rounding the float32 mean costs ~25 ulp of the normalised values.
                expectClose(out, ref, tolerance: 1e-5, "layerNorm d=\(dim) affine=\(affine) eps=\(eps)")
            }
        }
    }

    @Test("RMSNorm with and without weight", arguments: oddSizes + [3072])
    func rmsNormMatches(dim: Int) {
        let x = Tensor.randn([5, dim], seed: 4), w = Tensor.randn([dim], seed: 5)
        for withWeight in [true, false] {
            let out = rmsNorm(x, weight: withWeight ? w : nil, eps: 1e-6), ref = Tensor(zeros: x.shape)
            rmsNormReference(rows: 5, dim: dim, x: x.data, weight: withWeight ? w.data : nil, eps: 1e-6, out: ref.data)
            expectClose(out, ref, tolerance: 2e-6, "rmsNorm d=\(dim) weight=\(withWeight)")
        }
    }

    @Test("GroupNorm, including a large group", arguments: [(1, 4, 1, 1), (2, 6, 3, 7), (1, 64, 32, 81), (1, 32, 2, 70_000)])
    func groupNormMatches(batch: Int, channels: Int, groups: Int, spatial: Int) {
        let x = Tensor.randn([batch, channels, spatial], seed: 6, std: 3)
        for i in 0..<x.count { x.data[i] += 10 }
        let w = Tensor.randn([channels], seed: 7), b = Tensor.randn([channels], seed: 8)
        for pool in testPools {
            let out = Tensor(zeros: x.shape), ref = Tensor(zeros: x.shape)
            groupNorm(batch: batch, channels: channels, spatial: spatial, groups: groups, x: x.data, weight: w.data,
                      bias: b.data, eps: 1e-6, out: out.data, pool: pool)
            groupNormReference(batch: batch, channels: channels, spatial: spatial, groups: groups, x: x.data,
                               weight: w.data, bias: b.data, eps: 1e-6, out: ref.data)
            expectClose(out, ref, tolerance: 2e-6, "groupNorm C=\(channels) G=\(groups) HW=\(spatial)")
        }
    }
}
