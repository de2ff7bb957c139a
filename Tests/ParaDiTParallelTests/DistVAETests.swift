import Foundation
import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// The diffusion layer's committed fixtures (tools/make_vae_fixtures.py, tools/make_pipeline_fixtures.py).
private let diffusionFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("ParaDiTDiffusionTests/Fixtures").path

/// One VAE and the latents to decode.
struct DistVAECase: CustomStringConvertible, Sendable {
    var name: String
    /// The VAE folder, relative to the diffusion fixtures.
    var folder: String
    /// nil: the fixture's own latents (Fixtures/vae/<name>/data.safetensors); otherwise random
    /// latents of this [B, h, w] with the VAE's channel count.
    var randomShape: [Int]?
    var scaling: LatentScaling = .divide
    var description: String { name }

    /// The VAE, the latents and, for the fixtures, diffusers' image of them.
    func load() throws -> (vae: AutoencoderKL, latents: Tensor, diffusers: Tensor?) {
        let vae = try AutoencoderKL.load(directory: "\(diffusionFixtures)/\(folder)")
        guard let shape = randomShape else {
            let data = try SafeTensorsFile(path: "\(diffusionFixtures)/vae/\(name)/data.safetensors")
            return (vae, try data.tensor("latents"), try data.tensor("image"))
        }
        return (vae, Tensor.randn([shape[0], vae.config.latentChannels, shape[1], shape[2]], seed: 11), nil)
    }
}

/// What one rank returns: its image and its communicator's counters.
struct RankResult: @unchecked Sendable {
    var image: Tensor
    var stats: [String: CommStats.Counter]
}

/// Decodes on `ranks` local ranks; every rank's image and counters.
private func parallelDecode(_ vae: AutoencoderKL, _ latents: Tensor, scaling: LatentScaling, ranks: Int) throws -> [RankResult] {
    nonisolated(unsafe) let vae = vae
    return try LocalWorld.run(size: ranks) { comm in
        let image = try vae.decode(latents: latents, scaling: scaling, comm: comm)
        return RankResult(image: image, stats: comm.stats.byOperation)
    }
}

/// The floats a rank of `ranks` must move when decoding latents [B, C, h, w], from the config alone:
/// halo rows (sent, and as many received), and the all-gathers' sent and received floats.
struct DistVAEVolume: Equatable {
    var halo = 0, haloMessages = 0
    var gatherSent = 0, gatherReceived = 0, gathers = 0

    init(config: AutoencoderKLConfig, latentShape s: [Int], ranks: Int, rank: Int) {
        let (batch, h, w) = (s[0], s[2], s[3])
        let widths = Array(config.blockOutChannels.reversed()), layers = config.layersPerBlock + 1
        let up = config.upscaleFactor
        let bands = balancedSplit(h, parts: ranks)
        let neighbours = (rank > 0 ? 1 : 0) + (rank < ranks - 1 ? 1 : 0)
        // 3×3 convs as (input channels, width of the map): conv_in, mid resnets, up blocks, conv_out.
        var convs = [(config.latentChannels, w)] + Array(repeating: (widths[0], w), count: 4)
        for (i, width) in widths.enumerated() {
            for j in 0..<layers { convs += [(j == 0 ? widths[max(i - 1, 0)] : width, w << i), (width, w << i)] }
            if i < widths.count - 1 { convs.append((width, w << (i + 1))) }
        }
        convs.append((widths.last!, w * up))
        halo = neighbours * batch * convs.reduce(0) { $0 + $1.0 * $1.1 }
        haloMessages = neighbours * convs.count
        // GroupNorms: mid (2 resnets × 2, attention), 2 per up-block resnet, conv_norm_out; then K|V, image.
        let norms = 5 + 2 * layers * widths.count + 1
        let (mine, others) = (bands[rank].count, h - bands[rank].count)
        let stats = 4 * batch * config.normNumGroups
        let kvPerRow = batch * w * 2 * widths[0], imagePerRow = batch * config.outChannels * w * up * up
        gatherSent = (ranks - 1) * (norms * stats + mine * kvPerRow + mine * imagePerRow)
        gatherReceived = (ranks - 1) * norms * stats + others * (kvPerRow + imagePerRow)
        gathers = norms + 2
    }
}

@Suite("Patch-parallel VAE decode equals serial")
struct DistVAETests {
    /// The diffusers-checked fixtures (6 rows, batch 2; 5 rows, three blocks) and the pipelines' VAEs
    /// on 5 or 7 random latent rows, so 2, 3 and 4 ranks all meet uneven bands.
    static let cases: [DistVAECase] = [
        DistVAECase(name: "sd-b2-6x8", folder: "vae/sd-b2-6x8/vae"),
        DistVAECase(name: "flux-b1-5x7", folder: "vae/flux-b1-5x7/vae"),
        DistVAECase(name: "dit", folder: "pipelines/dit/pipeline/vae", randomShape: [2, 5, 6], scaling: .reciprocal),
        DistVAECase(name: "pixart", folder: "pipelines/pixart/pipeline/vae", randomShape: [1, 7, 5]),
        DistVAECase(name: "sd3", folder: "pipelines/sd3/pipeline/vae", randomShape: [1, 5, 8]),
        DistVAECase(name: "flux", folder: "pipelines/flux/pipeline/vae", randomShape: [1, 7, 4]),
        DistVAECase(name: "flux-schnell", folder: "pipelines/flux-schnell/pipeline/vae", randomShape: [1, 5, 4]),
    ]

    /// The serial decode runs on one thread like each rank, so one rank must reproduce it bit for bit
    /// (the band code path is the serial arithmetic); more ranks differ only by float32 rounding
    /// (partial sums of the GroupNorm statistics, GEMMs of other sizes).
    @Test("every rank's image equals the serial decode (relative L2 ≤ 1e-5; one rank: bit-exact), and diffusers', on 1 to 4 ranks",
          arguments: cases)
    func parity(c: DistVAECase) throws {
        let (vae, latents, diffusers) = try c.load()
        let serial = try ThreadPool(threads: 1).withCurrent { try vae.decode(latents: latents, scaling: c.scaling) }
        var report: [String] = []
        for ranks in 1...4 {
            let results = try parallelDecode(vae, latents, scaling: c.scaling, ranks: ranks)
            let errors = results.map { relativeL2($0.image, serial) }
            for (rank, r) in results.enumerated() {
                #expect(r.image.shape == serial.shape, "\(c) on \(ranks) ranks: rank \(rank) has shape \(r.image.shape)")
                #expect(r.image.scalars == results[0].image.scalars, "\(c) on \(ranks) ranks: rank \(rank) differs from rank 0")
            }
            let worst = errors.max()!
            #expect(worst <= (ranks == 1 ? 0 : 1e-5), "\(c) on \(ranks) ranks: relative L2 \(worst)")
            if let diffusers {
                let err = relativeL2(results[0].image, diffusers)
                #expect(err <= 1e-5, "\(c) on \(ranks) ranks: relative L2 \(err) from diffusers' image")
            }
            report.append("\(ranks) ranks \(balancedSplit(latents.size(2), parts: ranks).map(\.count)): \(worst)")
        }
        print("DistVAE \(c) \(latents.shape): max relative L2 vs serial — \(report.joined(separator: "; "))")
    }

    @Test("bytes per rank are the halo rows, the GroupNorm statistics, the attention's K and V and the image bands",
          arguments: [("sd-b2-6x8", 3), ("flux-b1-5x7", 2), ("flux-b1-5x7", 4)])
    func bytes(name: String, ranks: Int) throws {
        let c = Self.cases.first { $0.name == name }!
        let (vae, latents, _) = try c.load()
        let results = try parallelDecode(vae, latents, scaling: c.scaling, ranks: ranks)
        for (rank, r) in results.enumerated() {
            let expected = DistVAEVolume(config: vae.config, latentShape: latents.shape, ranks: ranks, rank: rank)
            let (send, recv, gather) = (r.stats["send"]!, r.stats["recv"]!, r.stats["allGather"]!)
            #expect(send.bytesSent == 4 * expected.halo && send.calls == expected.haloMessages, "\(name) rank \(rank): \(send)")
            #expect(recv.bytesReceived == 4 * expected.halo && recv.calls == expected.haloMessages, "\(name) rank \(rank): \(recv)")
            #expect(gather.bytesSent == 4 * expected.gatherSent && gather.bytesReceived == 4 * expected.gatherReceived
                    && gather.calls == expected.gathers, "\(name) rank \(rank): \(gather), expected \(expected)")
            #expect(Set(r.stats.keys).isSubset(of: ["send", "recv", "allGather"]), "\(name): unexpected operations \(r.stats.keys)")
            print("DistVAE \(name) rank \(rank)/\(ranks): sent \(send.bytesSent) B halo + \(gather.bytesSent) B gathers "
                  + "(\(gather.calls) all-gathers), received \(recv.bytesReceived + gather.bytesReceived) B")
        }
    }

    /// What the exchanges buy: decoding each band alone (no halo rows, band-local GroupNorm and
    /// attention) and stacking the images is far from the serial decode, so the parity test can fail.
    @Test("stacking bands decoded independently is far from the serial decode")
    func independentBands() throws {
        let (vae, latents, _) = try Self.cases[0].load()
        let serial = try vae.decode(latents: latents)
        let (batch, channels, h, w) = (latents.size(0), latents.size(1), latents.size(2), latents.size(3))
        let stacked = Tensor(uninitialized: serial.shape)
        let up = vae.config.upscaleFactor, planes = batch * serial.size(1), imageWidth = serial.size(3)
        for rows in balancedSplit(h, parts: 3) {
            let band = Tensor(uninitialized: [batch, channels, rows.count, w])
            copy2D(rows: batch * channels, cols: rows.count * w, src: latents.data + rows.lowerBound * w, lds: h * w,
                   dst: band.data, ldd: rows.count * w)
            let image = try vae.decode(latents: band)
            copy2D(rows: planes, cols: rows.count * up * imageWidth, src: image.data, lds: rows.count * up * imageWidth,
                   dst: stacked.data + rows.lowerBound * up * imageWidth, ldd: serial.size(2) * imageWidth)
        }
        let err = relativeL2(stacked, serial)
        #expect(err > 1e-2, "independent bands: relative L2 \(err)")
        print("DistVAE independent bands (3, no exchanges): relative L2 \(err) vs serial")
    }

    @Test("more ranks than latent rows is refused on every rank, naming both counts")
    func tooManyRanks() throws {
        let (vae, latents, _) = try Self.cases[0].load()
        nonisolated(unsafe) let model = vae
        let messages = try LocalWorld.run(size: 7) { comm -> String? in
            do {
                _ = try model.decode(latents: latents, comm: comm)
                return nil
            } catch let error as ParallelError {
                return "\(error)"
            }
        }
        for (rank, message) in messages.enumerated() {
            #expect(message?.contains("6 row(s)") == true && message?.contains("7 ranks") == true, "rank \(rank): \(message ?? "accepted")")
        }
        print("DistVAE refusal: \(messages[0] ?? "none")")
    }
}

@Suite("Patch-parallel video VAE decode equals serial")
struct WanDistVAETests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ParaDiTDiffusionTests/Fixtures/prompt-pipelines/wan").path

    @Test("Wan's VAE on 1 to 4 ranks: every rank's video equals the serial decode (relative L2 ≤ 1e-5)")
    func parity() throws {
        let vae = try AutoencoderKLWan.load(directory: "\(Self.fixture)/pipeline/vae")
        let latents = try SafeTensorsFile(path: "\(Self.fixture)/expected.safetensors").tensor("latents")  // 4 latent rows
        let serial = try ThreadPool(threads: 1).withCurrent { try vae.decode(latents: latents) }
        for ranks in 1...4 {
            let videos = try LocalWorld.run(size: ranks) { comm in try vae.decode(latents: latents, comm: comm) }
            for (rank, video) in videos.enumerated() {
                let err = relativeL2(video, serial)
                #expect(video.shape == serial.shape && err <= 1e-5, "\(ranks) ranks, rank \(rank): relative L2 \(err)")
            }
        }
        #expect(throws: ParallelError.self) { _ = try LocalWorld.run(size: 5) { comm in try vae.decode(latents: latents, comm: comm) } }
    }
}
