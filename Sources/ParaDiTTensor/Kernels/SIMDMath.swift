// Vector math on SIMD8<Float> (one AVX2 register): exp, erfc, lane min/max, and unaligned loads
// and stores. Accuracy is within a few ulp of the libm functions (tested against them).
// Everything is `@_transparent`: `@inline(__always)` still left some call sites out of line, and an
// out-of-line SIMD8 call splits the vector into two SSE halves and clears the upper state.

public typealias F8 = SIMD8<Float>
public typealias F4 = SIMD4<Float>

@_transparent @usableFromInline func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@_transparent @usableFromInline func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

@_transparent @usableFromInline func load4(_ p: UnsafePointer<Float>) -> F4 {
    UnsafeRawPointer(p).loadUnaligned(as: F4.self)
}

@_transparent @usableFromInline func store4(_ v: F4, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F4.self)
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

/// e^x for every lane: x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite, two constants), a degree-5
/// minimax polynomial for e^r (relative error 1.7e-7), and 2^n built in the exponent bits. Lanes
/// below −87.3 (−inf included) give exactly 0; NaN stays NaN.
@_transparent public func exp8(_ x: F8) -> F8 {
    let hi: Float = 88.72283, lo: Float = -87.33654
    let xc = vmin(x, F8(repeating: hi))
    // Round x·log2(e) to nearest with the 1.5·2^23 trick: the integer lands in the low mantissa bits.
    let magic: Float = 12582912
    let t = F8(repeating: magic).addingProduct(xc, F8(repeating: 1.442695040888963))
    let n = t - magic
    let r = xc.addingProduct(n, F8(repeating: -0.693359375)).addingProduct(n, F8(repeating: 2.12194440e-4))
    // Constant term exactly 1, so that e^0 = 1 (a softmax's largest term).
    var p = F8(repeating: 0.00829031690955162)
    p = F8(repeating: 0.04189793020486832).addingProduct(p, r)
    p = F8(repeating: 0.1666763573884964).addingProduct(p, r)
    p = F8(repeating: 0.4999915063381195).addingProduct(p, r)
    p = F8(repeating: 0.9999997019767761).addingProduct(p, r)
    p = F8(repeating: 1).addingProduct(p, r)
    let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(F8(repeating: magic), to: SIMD8<Int32>.self)
    let scale = unsafeBitCast((ni &+ 127) &<< 23, to: F8.self)
    return (p * scale).replacing(with: 0, where: x .< lo)
}

/// 2^x for every lane x ≤ 0, as a softmax in base 2 needs it: x = n + r with n an integer and
/// |r| ≤ 1/2 (exact), a degree-5 minimax polynomial for 2^r (relative error 1.6e-7), and 2^n built
/// in the exponent bits. Lanes at or below −127 (−inf included) give exactly 0; NaN stays NaN.
/// Cheaper than `exp8` by its range reduction and clamping, which matters in attention's score pass.
@_transparent public func exp2NonPositive8(_ x: F8) -> F8 {
    let xc = vmax(x, F8(repeating: -127))
    // Round to the nearest integer with the 1.5·2^23 trick, the exponent bias 127 added in: the low
    // bits of t are then n + 127, which shifted into the exponent field make 2^n (+0 for n = −127).
    let magic: Float = 12583039
    let t = xc + magic
    let r = xc - (t - magic)
    var p = F8(repeating: 0.0013264728477224708)
    p = F8(repeating: 0.009671512991189957).addingProduct(p, r)
    p = F8(repeating: 0.05550733581185341).addingProduct(p, r)
    p = F8(repeating: 0.24022242426872253).addingProduct(p, r)
    p = F8(repeating: 0.6931470036506653).addingProduct(p, r)
    p = F8(repeating: 1).addingProduct(p, r)
    return p * unsafeBitCast(unsafeBitCast(t, to: SIMD8<Int32>.self) &<< 23, to: F8.self)
}

/// erfc(x) for every lane, with relative error below ~2e-7 everywhere (the Chebyshev fit of
/// Numerical Recipes' `erfcc`): relative accuracy holds in the tails, where GELU(x) for x ≪ 0 needs it.
@_transparent public func erfc8(_ x: F8) -> F8 {
    let z = x.replacing(with: -x, where: x .< 0)
    let t = 1 / (1 + 0.5 * z)
    var p = F8(repeating: 0.17087277)
    p = F8(repeating: -0.82215223).addingProduct(p, t)
    p = F8(repeating: 1.48851587).addingProduct(p, t)
    p = F8(repeating: -1.13520398).addingProduct(p, t)
    p = F8(repeating: 0.27886807).addingProduct(p, t)
    p = F8(repeating: -0.18628806).addingProduct(p, t)
    p = F8(repeating: 0.09678418).addingProduct(p, t)
    p = F8(repeating: 0.37409196).addingProduct(p, t)
    p = F8(repeating: 1.00002368).addingProduct(p, t)
    p = F8(repeating: -1.26551223).addingProduct(p, t)
    let r = t * exp8(p - z * z)
    return r.replacing(with: 2 - r, where: x .< 0)
}

/// Lane-wise maximum and minimum (the stdlib's pointwiseMax is not inlined; these become vmaxps/vminps).
@_transparent public func vmax(_ a: F8, _ b: F8) -> F8 { a.replacing(with: b, where: b .> a) }
@_transparent public func vmin(_ a: F8, _ b: F8) -> F8 { a.replacing(with: b, where: b .< a) }

/// Largest of the 8 lanes.
@inline(__always) func hmax(_ v: F8) -> Float {
    let m4 = vmax(v, F8(v[4], v[5], v[6], v[7], v[0], v[1], v[2], v[3]))
    return max(max(m4[0], m4[1]), max(m4[2], m4[3]))
}
