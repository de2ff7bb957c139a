import ParaDiTTensor
import ParaDiTWeights

/// diffusers `ResnetBlock2D` as the VAE decoder builds it: no time embedding, pre-norm, SiLU,
/// output scale 1 and dropout off, so
///   out = shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))
/// where the shortcut is a 1×1 `conv_shortcut` when the width changes and the identity otherwise.
package struct ResnetBlock2D {
    package let norm1: GroupNorm
    package let conv1: Conv2d
    package let norm2: GroupNorm
    package let conv2: Conv2d
    package let convShortcut: Conv2d?

    init(_ w: Weights, inChannels: Int, outChannels: Int, groups: Int, eps: Float) throws {
        norm1 = try GroupNorm(w.scope("norm1"), channels: inChannels, groups: groups, eps: eps)
        conv1 = try Conv2d(w.scope("conv1"), in: inChannels, out: outChannels, kernel: 3)
        norm2 = try GroupNorm(w.scope("norm2"), channels: outChannels, groups: groups, eps: eps)
        conv2 = try Conv2d(w.scope("conv2"), in: outChannels, out: outChannels, kernel: 3)
        convShortcut = inChannels == outChannels
            ? nil : try Conv2d(w.scope("conv_shortcut"), in: inChannels, out: outChannels, kernel: 1)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let h = conv2(norm2(conv1(norm1(x, silu: true)), silu: true))
        let shortcut = convShortcut.map { $0(x) } ?? x
        addInPlace(h, shortcut)
        return h
    }
}
