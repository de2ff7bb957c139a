import ParaDiTDistributed
import ParaDiTTensor
import ParaDiTWeights

/// What the values of an exchange travel as between ranks. Float32 sends them as computed. BF16
/// (`--dtype bf16`) sends each value rounded to bfloat16, two to a Float slot of the communicator:
/// half the bytes. It loses nothing where the receiver rounds to BF16 anyway — attention's q, k, v
/// (its products round them) and its output (the output projection rounds its input) — so the
/// exact methods stay exact against a BF16 serial run; PipeFusion's hand-off rounds the residual
/// stream, as a bfloat16 model holds it.
///
/// Exchanges are in blocks (one per peer, or one message): a block of n values takes ⌈n/2⌉ slots.
struct WireFormat {
    let precision: AttentionPrecision

    init(_ precision: AttentionPrecision) { self.precision = precision }

    /// What a model computing in `compute` exchanges.
    init(compute: ComputeDType) { self.init(compute == .bf16 ? AttentionPrecision.bf16 : .f32) }

    var bytesPerValue: Int { precision == .bf16 ? 2 : 4 }

    /// Float slots carrying a block of `values` values.
    func slots(_ values: Int) -> Int { precision == .bf16 ? bfloat16Slots(values) : values }
    func slots(_ blocks: [Int]) -> [Int] { blocks.map(slots) }

    /// x (blocks of `blocks` values, in order) as sent: x itself in Float32.
    func encode(_ x: Tensor, blocks: [Int]? = nil) -> Tensor {
        guard precision == .bf16 else { return x }
        let wire = buffer(blocks ?? [x.count])
        packBFloat16(x, blocks: blocks, into: wire)
        return wire
    }

    /// A buffer that receives blocks of `blocks` values.
    func buffer(_ blocks: [Int]) -> Tensor { Tensor(uninitialized: [slots(blocks).reduce(0, +)]) }

    /// The values of `wire` (blocks of `blocks` values, in order): `wire` itself in Float32.
    func decode(_ wire: Tensor, blocks: [Int]) -> Tensor {
        guard precision == .bf16 else { return wire }
        let out = Tensor(uninitialized: [blocks.reduce(0, +)])
        unpackBFloat16(wire, blocks: blocks, into: out)
        return out
    }

    /// An all-to-all in this format: x's blocks (`sendCounts` values for each rank, in rank order) go
    /// out; the values received (`recvCounts` from each rank) come back.
    func allToAll(_ x: Tensor, sendCounts: [Int], recvCounts: [Int], over comm: Communicator) throws -> Tensor {
        let received = buffer(recvCounts)
        try comm.allToAll(encode(x, blocks: sendCounts), sendCounts: slots(sendCounts), into: received,
                          recvCounts: slots(recvCounts))
        return decode(received, blocks: recvCounts)
    }

    /// An all-gather in this format: every rank's x (`counts[r]` values from rank r), in rank order.
    func allGather(_ x: Tensor, counts: [Int], over comm: Communicator) throws -> Tensor {
        let received = buffer(counts)
        try comm.allGather(encode(x), into: received, counts: slots(counts))
        return decode(received, blocks: counts)
    }
}
