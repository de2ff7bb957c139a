import ParaDiTTensor
import Testing

@Suite("Convolution and upsampling")
struct ConvolutionTests {
    static let shapes: [Conv2DShape] = [
        Conv2DShape(batch: 1, inChannels: 1, height: 1, width: 1, outChannels: 1, kernelH: 1, kernelW: 1),
        Conv2DShape(batch: 2, inChannels: 3, height: 7, width: 9, outChannels: 5, kernelH: 3, kernelW: 3, padH: 1, padW: 1),
        Conv2DShape(batch: 1, inChannels: 4, height: 16, width: 12, outChannels: 8, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2),
        Conv2DShape(batch: 1, inChannels: 5, height: 11, width: 13, outChannels: 3, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1),
        Conv2DShape(batch: 2, inChannels: 6, height: 5, width: 5, outChannels: 7, kernelH: 1, kernelW: 1),
        Conv2DShape(batch: 1, inChannels: 2, height: 6, width: 4, outChannels: 3, kernelH: 5, kernelW: 3, padH: 2, padW: 0),
    ]

    @Test("conv2d equals the direct sum", arguments: shapes)
    func conv2dMatches(s: Conv2DShape) {
        let x = Tensor.randn([s.batch, s.inChannels, s.height, s.width], seed: 1)
        let w = Tensor.randn([s.outChannels, s.inChannels, s.kernelH, s.kernelW], seed: 2), b = Tensor.randn([s.outChannels], seed: 3)
        for withBias in [true, false] {
            let ref = Tensor(zeros: [s.batch, s.outChannels, s.outHeight, s.outWidth])
            conv2dReference(s, x: x.data, weight: w.data, bias: withBias ? b.data : nil, out: ref.data)
            for pool in testPools {
                let out = Tensor(zeros: ref.shape)
                conv2d(s, x: x.data, weight: w.data, bias: withBias ? b.data : nil, out: out.data, pool: pool)
                expectClose(out, ref, tolerance: 1e-6, "conv2d \(s) bias=\(withBias) threads \(pool.threadCount)")
            }
        }
    }

    @Test("conv2d in several row bands equals one band")
    func conv2dBands() {
        // 512 channels × 9 taps × 40 columns per output row exceeds the im2col budget in a few rows.
        let x = Tensor.randn([1, 512, 40, 40], seed: 4), w = Tensor.randn([2, 512, 3, 3], seed: 5)
        let out = conv2d(x, weight: w, bias: nil, stride: 1, padding: 1)
        let s = Conv2DShape(batch: 1, inChannels: 512, height: 40, width: 40, outChannels: 2, kernelH: 3, kernelW: 3, padH: 1, padW: 1)
        let ref = Tensor(zeros: out.shape)
        conv2dReference(s, x: x.data, weight: w.data, bias: nil, out: ref.data)
        expectClose(out, ref, tolerance: 1e-6, "banded conv2d")
    }

    @Test("nearest upsampling equals reference", arguments: [1, 2, 3])
    func upsample(factor: Int) {
        let x = Tensor.randn([2, 3, 5, 7], seed: 6)
        let out = upsampleNearest(x, factor: factor), ref = Tensor(zeros: out.shape)
        upsampleNearestReference(planes: 6, height: 5, width: 7, factor: factor, x: x.data, out: ref.data)
        #expect(out.scalars == ref.scalars)
    }
}

extension Conv2DShape: CustomStringConvertible {
    public var description: String {
        "N\(batch) C\(inChannels) \(height)×\(width) → O\(outChannels) k\(kernelH)×\(kernelW) s\(strideH),\(strideW) p\(padH),\(padW)"
    }
}
