import Foundation
import ParaDiTTensor
import ParaDiTWeights

// `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))` in float32, bit for
// bit, so a ParaDiT image starts from the same noise as the diffusers pipeline with that seed.
// torch's CPU normal kernel (ATen/native/cpu/DistributionTemplates.h) takes one of two paths:
// - 16 or more values: one 24-bit uniform per value first, then Box–Muller in place on each block
//   of 16 (BoxMuller.swift). When the count is not a multiple of 16, 16 fresh uniforms overwrite
//   the last 16 values and that block is transformed again, so the tail is not a prefix property.
// - fewer than 16 values: double-precision Box–Muller, one 53-bit uniform pair per two values
//   (log1p, sin and cos of the C library), rounded to float. Its second value is cached in the
//   generator and returned by the next such draw, even one in a later call.

/// A seeded stand-in for `torch.Generator("cpu")` that draws `torch.randn` noise exactly as torch
/// does, advancing the same state: successive calls return what successive `torch.randn` calls on
/// one torch generator return.
public struct TorchGenerator: Sendable {
    /// Which of torch's two CPU builds of the Box–Muller step to reproduce (BoxMuller.swift).
    public enum NormalKernel: Sendable {
        /// torch on any x86-64 machine with AVX2 (the usual case): exact on every platform.
        case avx2
        /// torch's DEFAULT build (no AVX2, or ATEN_CPU_CAPABILITY=default) with this platform's
        /// libm: exact where that is torch's libm (glibc).
        case libm
    }

    public let kernel: NormalKernel
    public private(set) var seed: UInt64
    private var engine: MersenneTwister
    /// torch's `next_double_normal_sample`: the unused second value of the last small draw.
    private var cachedNormal: Double?

    /// A generator as `torch.Generator("cpu").manual_seed(seed)` leaves it.
    public init(seed: UInt64, kernel: NormalKernel = .avx2) {
        self.kernel = kernel
        self.seed = seed
        engine = MersenneTwister(seed: seed)
    }

    /// Reseeds like `manual_seed`, dropping the cached normal value too.
    public mutating func manualSeed(_ seed: UInt64) {
        self = TorchGenerator(seed: seed, kernel: kernel)
    }

    /// Standard-normal float32 values of `shape`, equal bit for bit to torch's `randn` on CPU.
    public mutating func randn(_ shape: [Int]) throws -> Tensor {
        var count = 1
        for d in shape {
            guard d >= 0 else { throw WeightsError.badInput(name: "randn shape", reason: "\(shape) has a negative size") }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw WeightsError.badInput(name: "randn shape", reason: "\(shape) has too many elements") }
            count = product
        }
        let out = Tensor(uninitialized: shape)
        fillNormal(out.data, count: count)
        return out
    }

    /// Fills `count` floats at `out` as `torch.randn` fills a contiguous tensor of that size.
    public mutating func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int) {
        if count < 16 {
            // `+ 0` is torch's `value · std + mean` with std 1 and mean 0: it turns −0 into +0.
            for i in 0..<count { out[i] = Float(nextDoubleNormal() + 0) }
            return
        }
        engine.fillUniform(out, count: count)
        transformBlocks(out, count: count - count % 16)
        if count % 16 != 0 {
            engine.fillUniform(out + count - 16, count: 16)
            transformBlocks(out + count - 16, count: 16)
        }
    }

    /// Box–Muller on `count` (a multiple of 16) uniforms at `data`, block by block.
    private func transformBlocks(_ data: UnsafeMutablePointer<Float>, count: Int) {
        switch kernel {
        case .avx2:
            for block in stride(from: 0, to: count, by: 16) { normalFill16AVX2(data + block) }
        case .libm:
            for block in stride(from: 0, to: count, by: 16) { normalFill16Libm(data + block) }
        }
    }

    /// torch's `normal_distribution<double>`: the cached value if there is one, else a fresh pair
    /// (radius from the second uniform, angle from the first) whose sine is cached.
    private mutating func nextDoubleNormal() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return cached
        }
        let u1 = engine.nextUniformDouble(), u2 = engine.nextUniformDouble()
        let radius = (-2 * log1p(-u2)).squareRoot()
        let theta = 2 * Double.pi * u1
        cachedNormal = radius * sin(theta)
        return radius * cos(theta)
    }
}
