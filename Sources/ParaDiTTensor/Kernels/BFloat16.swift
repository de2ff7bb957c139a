// Rounding to bfloat16 (nearest, ties to even, as torch's `.to(torch.bfloat16)`): what BF16 compute
// does to a GEMM's operands, to attention's operands and probabilities, and to the activations the
// parallel methods exchange in BF16 mode. One rounding everywhere keeps a value rounded twice the
// same, which is what makes an exchange in BF16 lossless when its receiver rounds anyway.

/// The precision of attention's two products. `bf16`: Q, K, V and the softmax probabilities P are
/// rounded to bfloat16 before Q·Kᵀ and P·V, whose products are summed in Float32 (a product of two
/// bfloat16 values is exact in Float32), as PyTorch's CPU flash attention does on bfloat16 tensors.
/// The softmax statistics (row maxima, sums, log-sum-exp) and the output stay Float32 either way.
public enum AttentionPrecision: String, Sendable {
    case f32, bf16
}

/// The high halves of eight floats' bits rounded to bfloat16 (nearest even; a NaN stays a quiet NaN).
/// Integer arithmetic only: Swift's SIMD masks compile to scalar code.
@inline(__always)
func bfloat16Bits8(_ bits: SIMD8<UInt32>) -> SIMD8<UInt32> {
    // nan: 1 where the magnitude exceeds infinity's; a NaN gets no rounding increment (its carry
    // could reach the sign) and its quiet bit set.
    let nan = ((bits & 0x7FFF_FFFF) &+ 0x007F_FFFF) &>> 31
    let increment = (0x7FFF &+ ((bits &>> 16) & 1)) & (nan &- 1)
    return ((bits &+ increment) | (nan &<< 22)) &>> 16
}

/// Eight probabilities in [0, 1] rounded to the nearest bfloat16, without the NaN guard of
/// `bfloat16Bits8` in this per-score step: a NaN score makes its row's sum, and so its output, NaN
/// whatever its rounded P is.
@inline(__always)
func roundedProbabilitiesToBFloat16(_ x: F8) -> F8 {
    let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
    return unsafeBitCast((bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) & 0xFFFF_0000, to: F8.self)
}

/// x[i] = x[i] rounded to the nearest bfloat16, for i < count (the values stay Float).
@inline(__always)
public func roundToBFloat16(_ x: UnsafeMutablePointer<Float>, count: Int) {
    let raw = UnsafeMutableRawPointer(x)
    var i = 0
    while i + 8 <= count {
        let bits = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<UInt32>.self)
        raw.storeBytes(of: bfloat16Bits8(bits) &<< 16, toByteOffset: i * 4, as: SIMD8<UInt32>.self)
        i += 8
    }
    while i < count { x[i] = Float(bitPattern: UInt32(bfloat16Bits(x[i])) << 16); i += 1 }
}

/// x[m×k] rounded to BF16 bits, row stride k in `out`.
public func roundRowsToBFloat16(m: Int, k: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<UInt16>) {
    for i in 0..<m {
        let row = x + i * ldx, dst = out + i * k
        var j = 0
        while j + 8 <= k {
            let rounded = bfloat16Bits8(UnsafeRawPointer(row + j).loadUnaligned(as: SIMD8<UInt32>.self))
            UnsafeMutableRawPointer(dst + j).storeBytes(of: SIMD8<UInt16>(truncatingIfNeeded: rounded),
                                                        as: SIMD8<UInt16>.self)
            j += 8
        }
        while j < k { dst[j] = bfloat16Bits(row[j]); j += 1 }
    }
}

/// x[0..<count] as bfloat16 bits into `out` (two per Float slot when exchanged), in parallel.
public func narrowToBFloat16(count: Int, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<UInt16>,
                             pool: ThreadPool = .current) {
    pool.parallelChunks(count, minChunk: elementwiseGrain) { range, _ in
        roundRowsToBFloat16(m: 1, k: range.count, x: x + range.lowerBound, ldx: range.count,
                            out: out + range.lowerBound)
    }
}

/// `count` bfloat16 values widened into `out`, in parallel.
public func widenBFloat16(count: Int, _ bits: UnsafePointer<UInt16>, _ out: UnsafeMutablePointer<Float>,
                          pool: ThreadPool = .current) {
    pool.parallelChunks(count, minChunk: elementwiseGrain) { range, _ in
        convertBFloat16ToFloat(count: range.count, bits + range.lowerBound, out + range.lowerBound)
    }
}

/// Float slots that carry a block of `values` bfloat16 values (two to a slot).
@inline(__always) public func bfloat16Slots(_ values: Int) -> Int { (values + 1) / 2 }

/// x's values, in blocks of `blocks` (default one block), rounded to bfloat16 and packed two to a
/// Float slot of `out`; each block starts on a whole slot (a block of n takes ⌈n/2⌉ slots, an odd
/// one padded with zero). What a BF16 exchange between ranks sends.
public func packBFloat16(_ x: Tensor, blocks: [Int]? = nil, into out: Tensor) {
    let blocks = blocks ?? [x.count]
    check(blocks.reduce(0, +) <= x.count && blocks.map(bfloat16Slots).reduce(0, +) <= out.count,
          "packBFloat16: blocks of \(blocks.reduce(0, +)) values from \(x.count) into \(out.count) slots")
    withExtendedLifetime((x, out)) {
        var value = 0, slot = 0
        for n in blocks {
            let bits = UnsafeMutableRawPointer(out.data + slot).assumingMemoryBound(to: UInt16.self)
            narrowToBFloat16(count: n, x.data + value, bits)
            if n % 2 == 1 { bits[n] = 0 }
            (value, slot) = (value + n, slot + bfloat16Slots(n))
        }
    }
}

/// The inverse of `packBFloat16`: the blocks' values widened into `out`, in order.
public func unpackBFloat16(_ packed: Tensor, blocks: [Int]? = nil, into out: Tensor) {
    let blocks = blocks ?? [out.count]
    check(blocks.reduce(0, +) <= out.count && blocks.map(bfloat16Slots).reduce(0, +) <= packed.count,
          "unpackBFloat16: blocks of \(blocks.reduce(0, +)) values from \(packed.count) slots into \(out.count)")
    withExtendedLifetime((packed, out)) {
        var value = 0, slot = 0
        for n in blocks {
            let bits = UnsafeRawPointer(packed.data + slot).assumingMemoryBound(to: UInt16.self)
            widenBFloat16(count: n, bits, out.data + value)
            (value, slot) = (value + n, slot + bfloat16Slots(n))
        }
    }
}
