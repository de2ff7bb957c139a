import ParaDiTTensor
import ParaDiTWeights

/// diffusers `UNetMidBlock2D` as the VAE builds it (one layer): resnet, attention (unless
/// `mid_block_add_attention` is false), resnet, all at the same width.
package struct UNetMidBlock2D {
    package let resnets: [ResnetBlock2D]
    package let attention: Attention?

    init(_ w: Weights, channels: Int, addAttention: Bool, groups: Int, eps: Float) throws {
        resnets = try (0..<2).map { i in
            try ResnetBlock2D(w.scope("resnets").scope(i), inChannels: channels, outChannels: channels,
                              groups: groups, eps: eps)
        }
        attention = addAttention
            ? try Attention(w.scope("attentions").scope(0), channels: channels, groups: groups, eps: eps) : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = resnets[0](x)
        if let attention { h = attention(h) }
        return resnets[1](h)
    }
}
