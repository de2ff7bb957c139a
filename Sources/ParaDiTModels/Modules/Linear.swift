import ParaDiTTensor
import ParaDiTWeights

/// `nn.Linear`: weight [out, in] (in the element type `--weights-dtype` asks for), optional bias [out].
public struct Linear {
    public let weight: WeightMatrix
    public let bias: Tensor?
    public var inFeatures: Int { weight.columns }
    public var outFeatures: Int { weight.rows }

    public init(_ w: Weights, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws {
        weight = try w.matrix("weight", shape: [outFeatures, inFeatures])
        self.bias = bias ? try w.tensor("bias", shape: [outFeatures]) : nil
    }

    init(weight: WeightMatrix, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
    }

    /// Several linears over the same input fused into one (their outputs side by side), so one GEMM
    /// computes q, k and v together. Narrow weights are stacked in place, never copied.
    public static func fused(_ parts: [Linear]) -> Linear {
        let rows = parts.reduce(0) { $0 + $1.outFeatures }, cols = parts[0].inFeatures
        check(parts.allSatisfy { $0.inFeatures == cols }, "fused linears need the same input size")
        let hasBias = parts.allSatisfy { $0.bias != nil }
        if parts.allSatisfy({ $0.weight.dense?.isPlaceholder == true }) {
            return Linear(weight: WeightMatrix(dense: .placeholder([rows, cols])), bias: hasBias ? .placeholder([rows]) : nil)
        }
        return Linear(weight: .stacked(parts.map(\.weight)), bias: hasBias ? concatenate(parts.map { $0.bias! }, axis: 0) : nil)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }

    /// The precision of the attention this projection feeds: BF16 compute (`--dtype bf16`) runs
    /// attention's products on BF16 operands too, as PyTorch does on a bfloat16 model.
    public var attentionPrecision: AttentionPrecision { weight.compute == .bf16 ? .bf16 : .f32 }
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
