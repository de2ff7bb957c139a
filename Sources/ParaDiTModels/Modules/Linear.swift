import ParaDiTTensor
import ParaDiTWeights

/// `nn.Linear`: weight [out, in], optional bias [out].
public struct Linear {
    public let weight: Tensor
    public let bias: Tensor?
    public var inFeatures: Int { weight.size(1) }
    public var outFeatures: Int { weight.size(0) }

    public init(_ w: Weights, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws {
        weight = try w.tensor("weight", shape: [outFeatures, inFeatures])
        self.bias = bias ? try w.tensor("bias", shape: [outFeatures]) : nil
    }

    init(weight: Tensor, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
    }

    /// Several linears over the same input fused into one (their outputs side by side), so one GEMM
    /// computes q, k and v together.
    public static func fused(_ parts: [Linear]) -> Linear {
        let rows = parts.reduce(0) { $0 + $1.outFeatures }, cols = parts[0].inFeatures
        if parts.allSatisfy({ $0.weight.isPlaceholder }) {
            return Linear(weight: .placeholder([rows, cols]), bias: parts.allSatisfy { $0.bias != nil } ? .placeholder([rows]) : nil)
        }
        let weight = Tensor(uninitialized: [rows, cols])
        let bias = parts.allSatisfy { $0.bias != nil } ? Tensor(uninitialized: [rows]) : nil
        var at = 0
        for p in parts {
            check(p.inFeatures == cols, "fused linears need the same input size")
            weight.rows(at..<(at + p.outFeatures)).copy(from: p.weight)
            if let bias { bias.rows(at..<(at + p.outFeatures)).copy(from: p.bias!) }
            at += p.outFeatures
        }
        return Linear(weight: weight, bias: bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}

/// `nn.LayerNorm` over the last dim, with or without affine parameters.
public struct LayerNorm {
    public let weight: Tensor?
    public let bias: Tensor?
    public let eps: Float

    /// Affine parameters are read from `w` when `affine`.
    public init(_ w: Weights?, dim: Int, eps: Float, affine: Bool) throws {
        if affine, let w {
            weight = try w.tensor("weight", shape: [dim])
            bias = try w.tensor("bias", shape: [dim])
        } else {
            (weight, bias) = (nil, nil)
        }
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
}
