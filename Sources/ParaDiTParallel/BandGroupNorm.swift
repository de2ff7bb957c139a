import ParaDiTDiffusion
import ParaDiTTensor

// GroupNorm of a band with the whole image's statistics, in one all-gather per norm.
//
// Each rank reduces its part of every (sample, group) to S = Σx and Q = Σ(x − c)² around its own
// float32 mean c = Float(S / n), both in Double: two passes, as the serial kernel does, so Q never
// suffers the cancellation of a one-pass Σx² − n·mean². Everyone's (S, Q) are all-gathered and
// each rank combines them in rank order (bit-identical on every rank), around the float32 mean
// m = Float(ΣS / N) that the serial kernel subtracts:
//   Σ(x − m)² = Σ_r [Q_r + 2(c_r − m)(S_r − n_r c_r) + n_r (c_r − m)²]
// (exact algebra; S_r − n_r c_r is only c_r's rounding). So mean and variance equal the serial
// ones up to Double rounding, for one collective where a distributed two-pass (mean, then
// deviations) needs two. The communicator moves 4-byte words: the Doubles travel as their bit
// patterns, two words each, which a gather copies untouched.

extension BandExchange {
    /// `norm` (then SiLU when `silu`) of the band x [B, C, rows, W] with whole-image statistics.
    func groupNorm(_ norm: GroupNorm, _ x: Tensor, silu applySiLU: Bool = false) throws -> Tensor {
        let (groups, rows, w) = (norm.groups, x.size(2), x.size(3))
        let items = x.size(0) * groups, perGroup = x.size(1) / groups
        // Per rank and item (sample, group): S, Q as Doubles, two 32-bit words each.
        let words = groupNormPartials(x, groups: groups).flatMap { [$0.sum, $0.squares] }.flatMap(Self.words)
        let gathered = Tensor(uninitialized: [comm.size * 4 * items])
        try comm.allGather(Tensor(shape: [4 * items], values: words), into: gathered)
        let received = gathered.scalars
        let all = stride(from: 0, to: received.count, by: 2).map { Self.double(received, at: $0) }
        let counts = self.rows(atHeight: rows).map { Double(perGroup * $0.count * w) }
        let stats = (0..<items).map { item in
            combine(counts.indices.map { r in (all[2 * (r * items + item)], all[2 * (r * items + item) + 1]) }, counts: counts, eps: norm.eps)
        }
        let out = ParaDiTTensor.groupNorm(x, groups: groups, stats: stats, weight: norm.weight, bias: norm.bias)
        return applySiLU ? silu(out) : out
    }

    /// The float32 mean and 1/√(variance + eps) of one item from every rank's (S, Q), in rank order.
    private func combine(_ partials: [(sum: Double, squares: Double)], counts: [Double], eps: Float) -> (mean: Float, invStd: Float) {
        let total = counts.reduce(0, +)
        let mean = Float(partials.reduce(0.0) { $0 + $1.sum } / total)
        let m = Double(mean)
        var squares = 0.0
        for ((s, q), n) in zip(partials, counts) {
            let c = Double(Float(s / n))
            squares += q + 2 * (c - m) * (s - n * c) + n * (c - m) * (c - m)
        }
        return (mean, Float(1 / (squares / total + Double(eps)).squareRoot()))
    }

    /// A Double's bit pattern as two float32 words (low, high), which a gather copies untouched.
    static func words(_ d: Double) -> [Float] {
        [Float(bitPattern: UInt32(truncatingIfNeeded: d.bitPattern)), Float(bitPattern: UInt32(truncatingIfNeeded: d.bitPattern >> 32))]
    }

    static func double(_ words: [Float], at i: Int) -> Double {
        Double(bitPattern: UInt64(words[i].bitPattern) | UInt64(words[i + 1].bitPattern) << 32)
    }
}
