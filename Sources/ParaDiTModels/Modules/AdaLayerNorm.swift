import ParaDiTTensor
import ParaDiTWeights

/// Per-sample modulation parameters: `chunks` vectors of `dim` side by side in each row of
/// `values` [B, chunks·dim], as `emb.chunk(n, dim=1)` leaves them in diffusers.
public struct Modulation {
    public let values: Tensor
    public let dim: Int
    public var chunks: Int { values.size(1) / dim }

    public init(_ values: Tensor, dim: Int) {
        check(values.rank == 2 && values.size(1) % dim == 0, "modulation \(values.shape) does not split into chunks of \(dim)")
        self.values = values
        self.dim = dim
    }

    /// Chunk i of every sample, read in place.
    public func chunk(_ i: Int) -> StridedView { values.columns((i * dim)..<((i + 1) * dim)) }

    /// x · (1 + scale) + shift with scale and shift chunks of this modulation; x: [B, L, dim].
    public func modulate(_ x: Tensor, scale: Int, shift: Int) -> Tensor {
        ParaDiTTensor.modulate(x, scale: chunk(scale), shift: chunk(shift))
    }

    /// residual + gate · y, in place on residual; gate is a chunk of this modulation.
    public func gatedAdd(_ residual: Tensor, gate: Int, _ y: Tensor) {
        ParaDiTTensor.gatedAdd(into: residual, gate: chunk(gate), y)
    }
}

/// `AdaLayerNormZero` with its own `CombinedTimestepLabelEmbeddings` (DiT): emb → SiLU → linear to
/// six chunks (shift, scale, gate for attention; shift, scale, gate for the MLP).
public struct AdaLayerNormZero {
    public let emb: CombinedTimestepLabelEmbeddings
    let linear: Linear
    let dim: Int

    public init(_ w: Weights, dim: Int, classes: Int) throws {
        emb = try CombinedTimestepLabelEmbeddings(w.scope("emb"), classes: classes, dim: dim)
        linear = try Linear(w.scope("linear"), in: dim, out: 6 * dim)
        self.dim = dim
    }

    /// The six modulation chunks for these timesteps and labels.
    public func modulation(timesteps: [Float], labels: [Int]) -> Modulation {
        Modulation(linear(silu(emb(timesteps: timesteps, labels: labels))), dim: dim)
    }
}

/// The adaLN projection shared by SD3 and Flux norms: SiLU(emb) → linear to `chunks` × dim.
/// `AdaLayerNormZero` (6 chunks: shift, scale, gate for attention and MLP), `SD35AdaLayerNormZeroX`
/// (9: plus shift, scale, gate of the second attention), `AdaLayerNormZeroSingle` (3) and
/// `AdaLayerNormContinuous` (2: scale, then shift — note the order) differ only in chunk count.
public struct AdaLNProjection {
    let linear: Linear
    let dim: Int

    public init(_ w: Weights, dim: Int, conditioningDim: Int? = nil, chunks: Int) throws {
        linear = try Linear(w.scope("linear"), in: conditioningDim ?? dim, out: chunks * dim)
        self.dim = dim
    }

    public func callAsFunction(_ emb: Tensor) -> Modulation { Modulation(linear(silu(emb)), dim: dim) }
}
