import ParaDiTTensor
import ParaDiTWeights

// The two torch.nn layers the decoder is built of, over NCHW tensors.

/// `nn.Conv2d` with stride 1 and "same" padding (kernel 3 → padding 1, kernel 1 → none), the
/// only kind the decoder uses: weight [out, in, k, k], bias [out].
package struct Conv2d {
    package let weight: Tensor
    package let bias: Tensor?
    package var outChannels: Int { weight.size(0) }

    init(_ w: Weights, in inChannels: Int, out outChannels: Int, kernel: Int, bias: Bool = true) throws {
        weight = try w.tensor("weight", shape: [outChannels, inChannels, kernel, kernel])
        self.bias = bias ? try w.tensor("bias", shape: [outChannels]) : nil
    }

    package func callAsFunction(_ x: Tensor) -> Tensor { conv2d(x, weight: weight, bias: bias, padding: weight.size(2) / 2) }
}

/// `nn.GroupNorm` with affine weight and bias [channels]; `silu: true` applies the SiLU that
/// follows every decoder norm in place, saving a tensor and a pass.
package struct GroupNorm {
    package let weight: Tensor
    package let bias: Tensor
    package let groups: Int
    package let eps: Float

    init(_ w: Weights, channels: Int, groups: Int, eps: Float) throws {
        weight = try w.tensor("weight", shape: [channels])
        bias = try w.tensor("bias", shape: [channels])
        self.groups = groups
        self.eps = eps
    }

    func callAsFunction(_ x: Tensor, silu applySiLU: Bool = false) -> Tensor {
        let out = groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
        return applySiLU ? silu(out) : out
    }
}
