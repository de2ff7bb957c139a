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
        let (planes, h, w) = (z.size(0) * z.size(1), z.size(2), z.size(3))
        let mine = latentRows[comm.rank]
        check(h == latentRows.last!.upperBound, "latents of \(h) rows, bands planned for \(latentRows.last!.upperBound)")
        let out = Tensor(uninitialized: [z.size(0), z.size(1), mine.count, w])
        withExtendedLifetime(z) {
            copy2D(rows: planes, cols: mine.count * w, src: z.data + mine.lowerBound * w, lds: h * w, dst: out.data, ldd: mine.count * w)
        }
        return out
    }

    // MARK: Convolution

    /// `conv` on the band x [B, C, rows, W] as on the whole map: 1×1 convs are local; a 3×3 conv
    /// runs on the band framed by the neighbours' halo rows, with padding only along the width.
    func conv(_ conv: Conv2d, _ x: Tensor) throws -> Tensor {
        let k = conv.weight.size(2)
        guard k == 3 else { return conv(x) }
        let (batch, c, rows, w) = (x.size(0), x.size(1), x.size(2), x.size(3))
        let framed = try withHalo(x)
        let s = Conv2DShape(batch: batch, inChannels: c, height: rows + 2, width: w, outChannels: conv.outChannels,
                            kernelH: k, kernelW: k, padH: 0, padW: 1)
        let out = Tensor(uninitialized: [batch, conv.outChannels, rows, w])
        withExtendedLifetime((framed, conv.weight, conv.bias)) {
            conv2d(s, x: framed.data, weight: conv.weight.data, bias: conv.bias?.data, out: out.data)
        }
        return out
    }

    /// x [B, C, rows, W] → [B, C, rows + 2, W]: the rank above's last row, the band, the rank
    /// below's first row (zero rows at the image's top and bottom).
    func withHalo(_ x: Tensor) throws -> Tensor {
        let (planes, rows, w) = (x.size(0) * x.size(1), x.size(2), x.size(3))
        let (me, n) = (comm.rank, comm.size)
        let framed = Tensor(uninitialized: [x.size(0), x.size(1), rows + 2, w])
        let plane = (rows + 2) * w
        // Halo rows as [planes, W]: sent first row, sent last row, received top, received bottom.
        let buffers = (0..<4).map { _ in Tensor(uninitialized: [planes, w]) }
        try withExtendedLifetime((x, framed, buffers)) {
            copy2D(rows: planes, cols: rows * w, src: x.data, lds: rows * w, dst: framed.data + w, ldd: plane)
            var requests: [CommRequest] = []
            if me > 0 {
                requests.append(comm.irecv(buffers[2].data, count: planes * w, from: me - 1, tag: MessageTag.haloDown))
                copy2D(rows: planes, cols: w, src: x.data, lds: rows * w, dst: buffers[0].data, ldd: w)
                requests.append(try comm.isend(buffers[0].data, count: planes * w, to: me - 1, tag: MessageTag.haloUp))
            } else {
                buffers[2].data.initialize(repeating: 0, count: planes * w)
            }
            if me < n - 1 {
                requests.append(comm.irecv(buffers[3].data, count: planes * w, from: me + 1, tag: MessageTag.haloUp))
                copy2D(rows: planes, cols: w, src: x.data + (rows - 1) * w, lds: rows * w, dst: buffers[1].data, ldd: w)
                requests.append(try comm.isend(buffers[1].data, count: planes * w, to: me + 1, tag: MessageTag.haloDown))
            } else {
                buffers[3].data.initialize(repeating: 0, count: planes * w)
            }
            for request in requests { try request.wait() }
            copy2D(rows: planes, cols: w, src: buffers[2].data, lds: w, dst: framed.data, ldd: plane)
            copy2D(rows: planes, cols: w, src: buffers[3].data, lds: w, dst: framed.data + (rows + 1) * w, ldd: plane)
        }
        return framed
    }

    // MARK: Gathers

    /// Concatenates every rank's local [outer, lengths[rank]] along the second axis, in rank
    /// order: [outer, Σ lengths] on every rank.
    func allGather(_ local: Tensor, outer: Int, lengths: [Int]) throws -> Tensor {
        check(local.count == outer * lengths[comm.rank], "local block of \(local.count) floats, plan says \(outer)·\(lengths[comm.rank])")
        let total = lengths.reduce(0, +)
        let staged = Tensor(uninitialized: [outer * total])
        let out = Tensor(uninitialized: [outer, total])
        try withExtendedLifetime((local, staged)) {
            try comm.allGather(local.data, count: local.count, into: staged.data, counts: lengths.map { outer * $0 })
            var start = 0
            for length in lengths {
                copy2D(rows: outer, cols: length, src: staged.data + outer * start, lds: length, dst: out.data + start, ldd: total)
                start += length
            }
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
