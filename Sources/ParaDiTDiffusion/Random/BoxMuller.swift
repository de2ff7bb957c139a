import Foundation

// torch's Box–Muller step for float32 tensors of 16 or more values (`NormalFill16` in
// ATen/native/cpu/DistributionTemplates.h): 16 uniforms u in [0, 1) become 8 pairs, element j
// paired with j + 8, and
//   radius = sqrt(-2 · log(1 - u[j])),  theta = 2π · u[j + 8]
//   out[j] = radius · cos(theta),       out[j + 8] = radius · sin(theta)
// (then `fma(out, std, mean)` with std 1 and mean 0, which only turns −0 into +0).
//
// torch has two builds of that step, and which one runs depends on the machine:
// - AVX2 (every x86-64 CPU with AVX2, AVX-512 ones included: the normal kernel has no AVX-512
//   build, so torch's dispatcher falls back to AVX2). log and sincos are the Cephes polynomials of
//   ATen/native/cpu/avx_mathfun.h, compiled by GCC with FMA contraction. `normalFill16AVX2`
//   repeats them operation for operation, each fused multiply-add where torch's binary has one
//   (read from the vfmadd/vfnmadd/vfmsub instructions of libtorch_cpu.so 2.15), so its results
//   are bit-identical on every platform.
// - DEFAULT (no AVX2, or ATEN_CPU_CAPABILITY=default): the C library's logf and sincosf.
//   `normalFill16Libm` equals it where this process uses the same libm as torch (glibc on Linux);
//   another libm may round some values differently.
// The two builds differ in the last bits of about 38% of the values (by up to 2e-6 for seed 0 and
// shape [1, 16, 128, 128]), so the AVX2 one is the default: it is what torch runs on x86-64.

/// `torch.randn`'s AVX2 Box–Muller on 16 uniforms at `data`, in place (see the file header).
@inline(__always)
func normalFill16AVX2(_ data: UnsafeMutablePointer<Float>) {
    let twoPi = Float(bitPattern: 0x40C9_0FDB)  // Float(2π)
    for j in 0..<8 {
        let radius = (-2 * cephesLog(1 - data[j])).squareRoot()
        let (sin, cos) = cephesSinCos(twoPi * data[j + 8])
        // `+ 0` is torch's fma(·, std 1, mean 0): it turns −0 into +0.
        data[j] = radius * cos + 0
        data[j + 8] = radius * sin + 0
    }
}

/// `torch.randn`'s DEFAULT-build Box–Muller on 16 uniforms at `data`, in place, with this
/// platform's libm (see the file header).
@inline(__always)
func normalFill16Libm(_ data: UnsafeMutablePointer<Float>) {
    for j in 0..<8 {
        let radius = (-2 * logf(1 - data[j])).squareRoot()
        // torch forms theta in double (2.0f · pi<double> · u) and rounds it to float.
        let theta = Float(2 * Double.pi * Double(data[j + 8]))
        // torch calls sincosf; glibc's sinf and cosf return the same values.
        data[j] = radius * cosf(theta) + 0
        data[j + 8] = radius * sinf(theta) + 0
    }
}

/// avx_mathfun.h's `log256_ps` on one lane, for x in (0, 1] (so its NaN and denormal handling
/// never applies): x = m · 2^e with m in [√½, √2), log x = e · ln 2 + log m, log m by a degree-9
/// polynomial, ln 2 split in two parts (q1 + q2).
@inline(__always)
func cephesLog(_ x: Float) -> Float {
    let bits = x.bitPattern
    var e = Float(Int32(bitPattern: bits >> 23) - 127) + 1
    let mantissa = Float(bitPattern: (bits & 0x807F_FFFF) | 0x3F00_0000)  // in [0.5, 1)
    let small = mantissa < Float(bitPattern: 0x3F35_04F3)  // √½
    var m = mantissa + -1
    if small { e -= 1 }
    m += small ? mantissa : 0
    let z = m * m
    var y = Float(bitPattern: 0xBDEB_D1B8).addingProduct(Float(bitPattern: 0x3D90_21BB), m)
    y = Float(bitPattern: 0x3DEF_251A).addingProduct(y, m)
    y = Float(bitPattern: 0xBDFE_5D4F).addingProduct(y, m)
    y = Float(bitPattern: 0x3E11_E9BF).addingProduct(y, m)
    y = Float(bitPattern: 0xBE2A_AE50).addingProduct(y, m)
    y = Float(bitPattern: 0x3E4C_CEAC).addingProduct(y, m)
    y = Float(bitPattern: 0xBE7F_FFFC).addingProduct(y, m)
    y = Float(bitPattern: 0x3EAA_AAAA).addingProduct(y, m)
    y = y * m
    y = (e * Float(bitPattern: 0xB95E_8083)).addingProduct(y, z)  // q1 = −2.12194440e-4
    y = y.addingProduct(-z, 0.5)
    return (m + y).addingProduct(e, Float(bitPattern: 0x3F31_8000))  // q2 = 0.693359375
}

/// avx_mathfun.h's `sincos256_ps` on one lane: reduce |x| by multiples of π/4 (π/4 split in three
/// parts), evaluate the sine and cosine polynomials, and pick and sign them by octant.
@inline(__always)
func cephesSinCos(_ x: Float) -> (sin: Float, cos: Float) {
    let signSin = x.bitPattern & 0x8000_0000
    let ax = Float(bitPattern: x.bitPattern & 0x7FFF_FFFF)
    var j = Int32(ax * Float(bitPattern: 0x3FA2_F983))  // 4/π, truncated toward zero
    j = (j &+ 1) & ~1
    let octant = Float(j)
    let swapSin = UInt32(bitPattern: j & 4) << 29
    let signCos = UInt32(bitPattern: ~(j &- 2) & 4) << 29
    let sinPolyFirst = j & 2 == 0
    var r = ax.addingProduct(octant, Float(bitPattern: 0xBF49_0000))  // −π/4 in three parts
    r = r.addingProduct(octant, Float(bitPattern: 0xB97D_A000))
    r = r.addingProduct(octant, Float(bitPattern: 0xB322_2169))
    let z = r * r
    var c = Float(bitPattern: 0xBAB6_061A).addingProduct(Float(bitPattern: 0x37CC_F5CE), z)
    c = Float(bitPattern: 0x3D2A_AAA5).addingProduct(c, z)
    c = z * c
    c = (-(z * 0.5)).addingProduct(z, c) + 1
    var s = Float(bitPattern: 0x3C08_839E).addingProduct(Float(bitPattern: 0xB94C_A1F9), z)
    s = Float(bitPattern: 0xBE2A_AAA3).addingProduct(s, z)
    s = r.addingProduct(r, z * s)
    // The same blend as torch's masks, so even the signs of zeros agree.
    let sinPart: Float = sinPolyFirst ? s : 0, cosPart: Float = sinPolyFirst ? 0 : c
    let sin = cosPart + sinPart
    let cos = (s - sinPart) + (c - cosPart)
    return (Float(bitPattern: sin.bitPattern ^ (signSin ^ swapSin)),
            Float(bitPattern: cos.bitPattern ^ signCos))
}
