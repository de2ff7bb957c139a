// torch's CPU random engine (ATen/core/MT19937RNGEngine.h, CPUGeneratorImpl.cpp): the standard
// 32-bit Mersenne Twister MT19937, seeded with Knuth's initialisation from the low 32 bits of the
// 64-bit seed that `manual_seed` takes. torch twists lazily, on the first draw after seeding and
// after every 624 draws; so does this.

/// The MT19937 engine behind `torch.Generator("cpu")`, draw for draw.
public struct MersenneTwister: Sendable {
    static let stateSize = 624
    static let shift = 397
    static let matrixA: UInt32 = 0x9908_B0DF

    private var state: [UInt32]
    /// The next word of `state` to temper; `stateSize` means the state must twist first.
    private var index: Int

    public init(seed: UInt64) {
        var s = [UInt32](repeating: 0, count: Self.stateSize)
        s[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<Self.stateSize {
            s[j] = 1_812_433_253 &* (s[j - 1] ^ (s[j - 1] >> 30)) &+ UInt32(j)
        }
        state = s
        index = Self.stateSize
    }

    /// One 32-bit draw (torch's `random()`).
    @inline(__always)
    public mutating func next() -> UInt32 {
        if index == Self.stateSize { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// torch's `random64()`: two draws, the first one as the high word.
    @inline(__always)
    public mutating func next64() -> UInt64 {
        let high = UInt64(next())
        return high << 32 | UInt64(next())
    }

    /// Fills `count` floats with torch's `uniform_real_distribution<float>(0, 1)`: the low 24 bits
    /// of one draw times 2⁻²⁴, in [0, 1) and exact.
    public mutating func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            out[i] = Float(next() & 0xFF_FFFF) * 0x1p-24
        }
    }

    /// torch's `uniform_real_distribution<double>(0, 1)`: the low 53 bits of `next64()` times 2⁻⁵³.
    public mutating func nextUniformDouble() -> Double {
        Double(next64() & 0x1F_FFFF_FFFF_FFFF) * 0x1p-53
    }

    /// Regenerates the 624 words by the MT19937 recurrence (split in three loops so no index wraps).
    private mutating func twist() {
        state.withUnsafeMutableBufferPointer { s in
            @inline(__always) func mixed(_ upper: UInt32, _ lower: UInt32) -> UInt32 {
                let y = (upper & 0x8000_0000) | (lower & 0x7FFF_FFFF)
                return (y >> 1) ^ (lower & 1 == 0 ? 0 : Self.matrixA)
            }
            let n = Self.stateSize, m = Self.shift
            for k in 0..<(n - m) { s[k] = s[k + m] ^ mixed(s[k], s[k + 1]) }
            for k in (n - m)..<(n - 1) { s[k] = s[k + m - n] ^ mixed(s[k], s[k + 1]) }
            s[n - 1] = s[m - 1] ^ mixed(s[n - 1], s[0])
        }
        index = 0
    }
}
