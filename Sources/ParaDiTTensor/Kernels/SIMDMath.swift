// Vector math on SIMD8<Float> (one AVX2 register): exp, erf, sigmoid-style helpers, and unaligned
// loads and stores. Accuracy is within a few ulp of the libm functions (tested against them).

public typealias F8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@inline(__always) func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

/// Loads `n` < 8 floats into the low lanes, zeros elsewhere.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ n: Int) -> F8 {
    var v = F8()
    for i in 0..<n { v[i] = p[i] }
    return v
}

@inline(__always) func storePartial(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = v[i] }
}

/// e^x for every lane: range reduction x = n·ln2 + r, a degree-6 polynomial for e^r, and 2^n built
/// in the exponent bits. Lanes below -87.3 (including -inf) give exactly 0; above 88.7, +inf is
/// avoided by clamping (e^88.7 ≈ 3.4e38).
@inline(__always) public func exp8(_ x: F8) -> F8 {
    let hi: Float = 88.72283, lo: Float = -87.33654
    let xc = x.clamped(lowerBound: F8(repeating: lo), upperBound: F8(repeating: hi))
    // Round x·log2(e) to nearest with the 1.5·2^23 trick: the integer lands in the low mantissa bits.
    let magic: Float = 12582912
    let t = xc * 1.442695040888963 + magic
    let n = t - magic
    var r = xc - n * 0.693359375
    r = r - n * -2.12194440e-4
    var p = F8(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * (r * r) + r + 1
    let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(F8(repeating: magic), to: SIMD8<Int32>.self)
    let scale = unsafeBitCast((ni &+ 127) &<< 23, to: F8.self)
    return (p * scale).replacing(with: 0, where: x .< lo)
}

/// erf(x) for every lane (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
@inline(__always) public func erf8(_ x: F8) -> F8 {
    let ax = x.replacing(with: -x, where: x .< 0)
    let t = 1 / (1 + 0.3275911 * ax)
    var p = F8(repeating: 1.061405429)
    p = p * t - 1.453152027
    p = p * t + 1.421413741
    p = p * t - 0.284496736
    p = p * t + 0.254829592
    let y = 1 - p * t * exp8(-ax * ax)
    return y.replacing(with: -y, where: x .< 0)
}

/// Sum of the 8 lanes.
@inline(__always) func hsum(_ v: F8) -> Float { v.sum() }

/// Largest of the 8 lanes.
@inline(__always) func hmax(_ v: F8) -> Float { v.max() }
