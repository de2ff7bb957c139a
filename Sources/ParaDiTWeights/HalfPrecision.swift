import ParaDiTTensor

// References for the 16-bit widening kernels (`convertHalfToFloat`, `convertBFloat16ToFloat` in
// ParaDiTTensor's WeightMatrix.swift, where the weights that use them live).

/// Reference for `convertHalfToFloat`: decodes sign, exponent and mantissa by hand.
public func halfToFloatReference(_ bits: UInt16) -> Float {
    let sign: Float = bits & 0x8000 != 0 ? -1 : 1
    let exponent = Int((bits >> 10) & 0x1F), mantissa = Float(bits & 0x3FF)
    switch exponent {
    case 0: return sign * mantissa * Float(sign: .plus, exponent: -24, significand: 1)  // subnormal
    case 31: return mantissa == 0 ? sign * .infinity : .nan
    default: return sign * (1 + mantissa / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
    }
}
