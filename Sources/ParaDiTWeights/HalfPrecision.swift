import ParaDiTTensor

// Widening of 16-bit floats to Float32. On x86_64 with F16C (the haswell target) the Float16
// conversion compiles to vcvtph2ps; BF16 is the top half of a Float32, so a shift widens it.

/// out[i] = Float(half[i]) for `count` IEEE half-precision values at `src` (any alignment).
public func convertHalfToFloat(count: Int, _ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    var i = 0
    while i + 8 <= count {
        let h = src.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)
        for l in 0..<8 { out[i + l] = Float(Float16(bitPattern: h[l])) }
        i += 8
    }
    while i < count { out[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))); i += 1 }
}

/// out[i] = the BF16 value at src[i], exactly (its bits become the high half of a Float32).
public func convertBFloat16ToFloat(count: Int, _ src: UnsafeRawPointer, _ out: UnsafeMutablePointer<Float>) {
    var i = 0
    while i + 8 <= count {
        let h = SIMD8<UInt32>(truncatingIfNeeded: src.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self))
        UnsafeMutableRawPointer(out + i).storeBytes(of: h &<< 16, as: SIMD8<UInt32>.self)
        i += 8
    }
    while i < count {
        out[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16)
        i += 1
    }
}

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
