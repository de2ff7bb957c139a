import ParaDiTTensor
import ParaDiTWeights

/// diffusers `Upsample2D` with `use_conv=True`: nearest-neighbour ×2, then a 3×3 conv (key `conv`).
package struct Upsample2D {
    package let conv: Conv2d

    init(_ w: Weights, channels: Int) throws {
        conv = try Conv2d(w.scope("conv"), in: channels, out: channels, kernel: 3)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { conv(upsampleNearest(x, factor: 2)) }
}

/// diffusers `UpDecoderBlock2D`: `layers` resnets (the first one changing the width from
/// `inChannels` to `outChannels`), then an optional upsampler (`upsamplers.0`).
package struct UpDecoderBlock2D {
    package let resnets: [ResnetBlock2D]
    package let upsampler: Upsample2D?

    init(_ w: Weights, inChannels: Int, outChannels: Int, layers: Int, upsample: Bool, groups: Int, eps: Float) throws {
        resnets = try (0..<layers).map { i in
            try ResnetBlock2D(w.scope("resnets").scope(i), inChannels: i == 0 ? inChannels : outChannels,
                              outChannels: outChannels, groups: groups, eps: eps)
        }
        upsampler = upsample ? try Upsample2D(w.scope("upsamplers").scope(0), channels: outChannels) : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for resnet in resnets { h = resnet(h) }
        return upsampler.map { $0(h) } ?? h
    }
}
