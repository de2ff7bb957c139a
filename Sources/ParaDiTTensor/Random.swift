import Foundation

/// A small seeded generator (SplitMix64) for test data and random-weight benchmarks.
/// Not torch's generator: seeded noise that matches torch is the diffusion layer's job.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Tensor {
    /// Standard-normal values (Box–Muller) times `std`, from `seed`.
    public static func randn(_ shape: [Int], seed: UInt64, std: Float = 1) -> Tensor {
        var rng = SplitMix64(seed: seed)
        let t = Tensor(uninitialized: shape)
        var i = 0
        while i < t.count {
            let u1 = Double.random(in: Double.ulpOfOne..<1, using: &rng), u2 = Double.random(in: 0..<1, using: &rng)
            let r = (-2 * Foundation.log(u1)).squareRoot()
            t.data[i] = Float(r * Foundation.cos(2 * .pi * u2)) * std
            if i + 1 < t.count { t.data[i + 1] = Float(r * Foundation.sin(2 * .pi * u2)) * std }
            i += 2
        }
        return t
    }

    /// Uniform values in `range`, from `seed` (filled in parallel, blocks seeded independently, so
    /// the values do not depend on the thread count).
    public static func uniform(_ shape: [Int], in range: ClosedRange<Float>, seed: UInt64) -> Tensor {
        let t = Tensor(uninitialized: shape)
        let block = 1 << 16, scale = (range.upperBound - range.lowerBound) / Float(1 << 24)
        ThreadPool.current.parallelFor((t.count + block - 1) / block) { b, _ in
            var rng = SplitMix64(seed: seed &+ UInt64(b) &* 0x9E37_79B9_7F4A_7C15)
            for i in (b * block)..<min(t.count, (b + 1) * block) {
                t.data[i] = range.lowerBound + Float(rng.next() >> 40) * scale
            }
        }
        return t
    }
}
