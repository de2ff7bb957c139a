import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTTensor

/// The exchanges that make a rank's horizontal band of a feature map [B, C, rows, W] give the
/// same result as the whole map, for the three layers of the VAE decoder that look beyond a pixel:
/// - a 3×3 convolution reads one row above and below: each neighbour sends one halo row of every
///   plane (zeros at the image border, as the serial conv's padding);
/// - GroupNorm needs the group's statistics over the whole image: every rank's partial sums are
///   all-gathered and combined in rank order;
/// - whole rows, or token ranges, are all-gathered in rank order (attention K/V, the final image).
/// Bands are split at the latent resolution; every layer's band is the latent band times the
/// layer's scale (1, 2, 4, 8), so a rank's rows at any layer follow from its tensor's height.
struct BandExchange {
    let comm: Communicator
    /// Every rank's latent rows, in rank order.
    let latentRows: [Range<Int>]

    init(latentHeight: Int, comm: Communicator) throws {
        guard comm.size <= latentHeight else {
            throw ParallelError.unsupported("the latents have \(latentHeight) row(s), fewer than the \(comm.size) ranks of the "
                                            + "patch-parallel VAE decode (one latent row per rank at least); use at most \(latentHeight) ranks")
        }
        self.comm = comm
        latentRows = balancedSplit(latentHeight, parts: comm.size)
    }

    /// Every rank's rows at the resolution of a band of `height` rows on this rank.
    func rows(atHeight height: Int) -> [Range<Int>] {
        let scale = height / latentRows[comm.rank].count
        check(scale * latentRows[comm.rank].count == height, "band of \(height) rows is not a multiple of the latent band")
        return latentRows.map { ($0.lowerBound * scale)..<($0.upperBound * scale) }
    }

    /// This rank's rows of latents z [B, C, h, w]: [B, C, rows, w].
    func band(ofLatents z: Tensor) -> Tensor {
        check(z.size(2) == latentRows.last!.upperBound, "latents of \(z.size(2)) rows, bands planned for \(latentRows.last!.upperBound)")
        return slice(z, axis: 2, latentRows[comm.rank])
    }

    // MARK: Convolution

    /// `conv` on the band x [B, C, rows, W] as on the whole map: 1×1 convs are local; a 3×3 conv
    /// runs on the band framed by the neighbours' halo rows, with padding only along the width.
    func conv(_ conv: Conv2d, _ x: Tensor) throws -> Tensor {
        let k = conv.weight.size(2)
        guard k == 3 else { return conv(x) }
        return conv2d(try withHalo(x), weight: conv.weight, bias: conv.bias, padding: (0, 1))
    }

    /// x [B, C, rows, W] → [B, C, rows + 2, W]: the rank above's last row, the band, the rank
    /// below's first row (zero rows at the image's top and bottom).
    func withHalo(_ x: Tensor) throws -> Tensor {
        let (rows, me, n) = (x.size(2), comm.rank, comm.size)
        let halo = [x.size(0), x.size(1), 1, x.size(3)]
        // Received rows: zeros at the image's top and bottom.
        let (top, bottom) = (Tensor(zeros: halo), Tensor(zeros: halo))
        var requests: [CommRequest] = []
        if me > 0 {
            requests.append(comm.irecv(into: top, from: me - 1, tag: MessageTag.haloDown))
            requests.append(try comm.isend(slice(x, axis: 2, 0..<1), to: me - 1, tag: MessageTag.haloUp))
        }
        if me < n - 1 {
            requests.append(comm.irecv(into: bottom, from: me + 1, tag: MessageTag.haloUp))
            requests.append(try comm.isend(slice(x, axis: 2, (rows - 1)..<rows), to: me + 1, tag: MessageTag.haloDown))
        }
        for request in requests { try request.wait() }
        return concatenate([top, x, bottom], axis: 2)
    }

    // MARK: Gathers

    /// Concatenates every rank's local [outer, lengths[rank]] along the second axis, in rank
    /// order: [outer, Σ lengths] on every rank.
    func allGather(_ local: Tensor, outer: Int, lengths: [Int]) throws -> Tensor {
        check(local.count == outer * lengths[comm.rank], "local block of \(local.count) floats, plan says \(outer)·\(lengths[comm.rank])")
        let total = lengths.reduce(0, +)
        let staged = Tensor(uninitialized: [outer * total])
        let out = Tensor(uninitialized: [outer, total])
        try comm.allGather(local, into: staged, counts: lengths.map { outer * $0 })
        var start = 0
        for length in lengths {
            copy(staged.block(outer * start, [outer, length]).allColumns, into: out.columns(start..<(start + length)))
            start += length
        }
        return out
    }

    /// The whole map [B, C, H, W] on every rank from each rank's band [B, C, rows, W].
    func gatherRows(_ x: Tensor) throws -> Tensor {
        let (batch, c, w) = (x.size(0), x.size(1), x.size(3))
        let rows = rows(atHeight: x.size(2))
        return try allGather(x, outer: batch * c, lengths: rows.map { $0.count * w }).reshaped([batch, c, rows.last!.upperBound, w])
    }
}
