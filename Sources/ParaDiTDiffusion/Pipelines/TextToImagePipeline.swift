import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// What to generate. Sizes are in pixels (nil: the model's native size).
public struct GenerationRequest: Sendable, Codable, Equatable {
    public var seed: UInt64
    public var steps: Int
    public var guidanceScale: Double
    public var height: Int?
    public var width: Int?
    /// ImageNet class ids, one image each (DiT).
    public var classLabels: [Int]
    /// Video frames (video pipelines; nil: the pipeline's default).
    public var frames: Int?

    public init(seed: UInt64 = 0, steps: Int, guidanceScale: Double, height: Int? = nil, width: Int? = nil,
                classLabels: [Int] = [], frames: Int? = nil) {
        (self.seed, self.steps, self.guidanceScale) = (seed, steps, guidanceScale)
        (self.height, self.width, self.classLabels, self.frames) = (height, width, classLabels, frames)
    }
}

/// How a pipeline's latents scale to pixels: what the recipes read of its VAE.
public struct LatentScale: Sendable, Equatable {
    public var spatial: Int
    /// Video frames per latent frame after the first (1 for images).
    public var temporal: Int

    public init(spatial: Int, temporal: Int = 1) { (self.spatial, self.temporal) = (spatial, temporal) }
}

/// One transformer forward pass on the given inputs, returning the whole output: the serial
/// model, or the same pass split over ranks (every rank gets the whole output).
public typealias Denoiser = (any TransformerInputs) throws -> Tensor

/// A diffusers text-to-image (or class-to-image) pipeline: seeded noise, the scheduler loop with
/// classifier-free guidance, the VAE decode, step for step as the diffusers pipeline of the folder's
/// class does it, so a seed gives diffusers' image.
public final class TextToImagePipeline {
    public let folder: PipelineFolder
    public let transformer: any DiffusionTransformer
    /// The image decoder; nil for a video pipeline.
    public let vae: AutoencoderKL?
    /// The video decoder of a video pipeline (WanPipeline's AutoencoderKLWan).
    public let videoVAE: AutoencoderKLWan?
    public let latentScale: LatentScale
    public let schedulerConfig: ConfigFile

    /// Transformer parameters held in memory, and the model's total (fewer on a pipeline stage).
    public private(set) var transformerParameters = (held: 0, total: 0)
    /// Bytes the transformer's linear weights keep resident in this process.
    public private(set) var transformerWeightBytes = 0

    /// Loads a pipeline folder; with `keepingBlocks`, only those transformer blocks' weights
    /// (a PipeFusion stage's); the transformer's linear weights held as `weightsDType`, computing in `compute`.
    public static func load(directory: String, keepingBlocks: Range<Int>? = nil, weightsDType: WeightsDType = .stored,
                            compute: ComputeDType = .f32) throws -> TextToImagePipeline {
        let folder = try PipelineFolder(directory: directory)
        let (transformer, held, total, bytes) = try ModelRegistry.load(directory: folder.path("transformer"), keepingBlocks: keepingBlocks,
                                                                       weightsDType: weightsDType, compute: compute)
        let vaeConfig = try ConfigFile(directory: folder.path("vae"))
        let video = vaeConfig.className == "AutoencoderKLWan"
        let vae = video ? nil : try AutoencoderKL.load(directory: folder.path("vae"))
        let videoVAE = video ? try AutoencoderKLWan.load(directory: folder.path("vae")) : nil
        let scale = try vae.map { LatentScale(spatial: $0.config.upscaleFactor) } ?? videoLatentScale(vaeConfig)
        let pipeline = try TextToImagePipeline(
            folder: folder, transformer: transformer, vae: vae, latentScale: scale,
            schedulerConfig: loadSchedulerConfig(directory: folder.path("scheduler")), videoVAE: videoVAE)
        pipeline.transformerParameters = (held, total)
        pipeline.transformerWeightBytes = bytes
        return pipeline
    }

    public convenience init(folder: PipelineFolder, transformer: any DiffusionTransformer, vae: AutoencoderKL,
                            schedulerConfig: ConfigFile) throws {
        try self.init(folder: folder, transformer: transformer, vae: vae,
                      latentScale: LatentScale(spatial: vae.config.upscaleFactor), schedulerConfig: schedulerConfig)
    }

    public init(folder: PipelineFolder, transformer: any DiffusionTransformer, vae: AutoencoderKL?,
                latentScale: LatentScale, schedulerConfig: ConfigFile, videoVAE: AutoencoderKLWan? = nil) throws {
        guard transformer.className == folder.family.transformerClass else {
            throw WeightsError.badConfig(path: folder.path("transformer"), reason: "holds a \(transformer.className); \(folder.className) needs a \(folder.family.transformerClass)")
        }
        _ = try makeScheduler(config: schedulerConfig)
        (self.folder, self.transformer, self.vae, self.schedulerConfig) = (folder, transformer, vae, schedulerConfig)
        (self.latentScale, self.videoVAE) = (latentScale, videoVAE)
    }

    public var family: PipelineFamily { folder.family }

    /// More steps than any schedule resolves (discrete ones train on 1000 timesteps).
    public static let maxSteps = 10_000

    /// The recipe of the folder's pipeline class for a request (validated).
    func recipe(_ request: GenerationRequest, conditioning: Conditioning?) throws -> DenoisingRecipe {
        guard request.steps >= 1, request.steps <= Self.maxSteps else {
            throw WeightsError.badInput(name: "steps", reason: "must be 1...\(Self.maxSteps), got \(request.steps)")
        }
        return try family.recipe(transformer, latentScale, request, conditioning)
    }

    /// Checks a request without running it (every rank does this before any compute): the
    /// recipe's checks, then the memory the run would need against the machine's.
    public func validate(_ request: GenerationRequest, conditioning: Conditioning?) throws {
        let recipe = try recipe(request, conditioning: conditioning)
        guard vae != nil else { return }  // latents only: nothing is decoded
        let memory = ProcessInfo.processInfo.physicalMemory
        guard let need = peakBytes(noiseShape: recipe.noiseShape), UInt64(need) <= memory else {
            let size = "\(request.height.map(String.init) ?? "native")x\(request.width.map(String.init) ?? "native")"
            let estimate = peakBytes(noiseShape: recipe.noiseShape).map { "about \(Self.gigabytes($0)) GB" } ?? "more memory than can be counted"
            throw WeightsError.badInput(name: "size", reason: "\(size) with batch \(recipe.noiseShape[0]) needs \(estimate) to decode, "
                                        + "this machine has \(Self.gigabytes(Int(clamping: memory))) GB; use a smaller --size")
        }
    }

    /// The decoder's peak in bytes for latents of `noiseShape`, nil past Int: its widest feature
    /// map at full resolution, three times over (input, output, a convolution's band buffer), in
    /// float32. The VAE dominates the transformer at every size that could fit.
    func peakBytes(noiseShape: [Int]) -> Int? {
        guard let vae else { return 0 }
        let f = vae.config.upscaleFactor, widest = vae.config.blockOutChannels.max() ?? 1
        let factors = [noiseShape[0], noiseShape[2], f, noiseShape[3], f, widest, 3, 4]
        return factors.reduce(Optional(1)) { product, n in
            product.flatMap { p in
                let (r, overflow) = p.multipliedReportingOverflow(by: n)
                return overflow ? nil : r
            }
        }
    }

    /// The image decoder, or an error saying that this pipeline makes video.
    public func decoder() throws -> AutoencoderKL {
        guard let vae else {
            throw WeightsError.badInput(name: "output", reason: "\(folder.className) makes video, not images")
        }
        return vae
    }

    /// A video pipeline's frames of `denoise`'s latents: [B, 3, F, H, W] in [−1, 1].
    public func decodeVideo(_ latents: Tensor) throws -> Tensor {
        guard let videoVAE else {
            throw WeightsError.badInput(name: "output", reason: "\(folder.className) makes images")
        }
        return try videoVAE.decode(latents: latents)
    }

    static func gigabytes(_ bytes: Int) -> String { String(format: "%.1f", Double(bytes) / 1e9) }

    /// Runs the denoising loop; returns the final latents as output_type="latent" gives them
    /// (Flux: packed). `onStep(i, n, seconds)` follows each step.
    public func denoise(_ request: GenerationRequest, conditioning: Conditioning?, denoiser: Denoiser,
                        onStep: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> Tensor {
        let sampler = try sampler(request, conditioning: conditioning)
        for i in sampler.timesteps.indices {
            let start = DispatchTime.now().uptimeNanoseconds
            try sampler.stepAll(step: i, output: denoiser(sampler.inputs(step: i)))
            onStep(i + 1, sampler.timesteps.count, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return sampler.finalLatents
    }

    /// The VAE's images [B, 3, H, W] (nominally in [−1, 1]) of `denoise`'s latents.
    public func decode(_ latents: Tensor, request: GenerationRequest, conditioning: Conditioning?) throws -> Tensor {
        let (z, scaling) = try vaeInput(latents, request: request, conditioning: conditioning)
        return try decoder().decode(latents: z, scaling: scaling)
    }

    /// What the VAE decodes for `denoise`'s latents (unpacked for Flux), and how to unscale it:
    /// for a decoder split over ranks.
    public func vaeInput(_ latents: Tensor, request: GenerationRequest, conditioning: Conditioning?) throws -> (Tensor, LatentScaling) {
        let recipe = try recipe(request, conditioning: conditioning)
        return (recipe.vaeLatents(latents), recipe.scaling)
    }
}

/// AutoencoderKLWan's scale factors, as WanPipeline reads them from the VAE's config.
func videoLatentScale(_ config: ConfigFile) throws -> LatentScale {
    struct Keys: Decodable {
        var scaleFactorSpatial: Int?, scaleFactorTemporal: Int?
        enum CodingKeys: String, CodingKey { case scaleFactorSpatial, scaleFactorTemporal }
    }
    let keys = try config.decode(Keys.self)
    let scale = LatentScale(spatial: keys.scaleFactorSpatial ?? 8, temporal: keys.scaleFactorTemporal ?? 4)
    guard scale.spatial >= 1, scale.temporal >= 1 else {
        throw WeightsError.badConfig(path: config.path, reason: "scale_factor_spatial/temporal must be at least 1")
    }
    return scale
}

/// One pipeline class's part of the loop, as its diffusers `__call__` does it.
protocol DenoisingRecipe {
    /// The shape of the initial noise, drawn as `randn_tensor` draws it.
    var noiseShape: [Int] { get }
    /// How the final latents are taken back to the VAE's space.
    var scaling: LatentScaling { get }
    /// The loop's latents from the noise (scaled, doubled or packed as the pipeline does).
    func initialLatents(_ noise: Tensor, initNoiseSigma: Float) -> Tensor
    func setTimesteps(_ scheduler: inout any Scheduler, steps: Int) throws
    /// The transformer's inputs at timestep t (the cond/uncond batch under guidance).
    func inputs(_ latents: Tensor, timestep t: Float) -> any TransformerInputs
    /// The transformer's token grid (rows, columns) for these latents.
    var tokenGrid: (rows: Int, columns: Int) { get }
    /// What the scheduler steps with: guided, without the learned variance channels.
    func modelOutput(_ output: Tensor) -> Tensor
    /// Latents as output_type="latent" returns them, and as the VAE takes them.
    func finalLatents(_ latents: Tensor) -> Tensor
    func vaeLatents(_ latents: Tensor) -> Tensor
    /// How many equal halves the transformer batch has: 2 for a guided [uncond; cond] (or [cond;
    /// null class]) batch, 1 otherwise. Joined requests are laid out half by half.
    var batchHalves: Int { get }
}

extension DenoisingRecipe {
    var scaling: LatentScaling { .divide }
    func finalLatents(_ latents: Tensor) -> Tensor { latents }
    func vaeLatents(_ latents: Tensor) -> Tensor { latents }
    func setTimesteps(_ scheduler: inout any Scheduler, steps: Int) throws { try scheduler.setTimesteps(steps, mu: nil) }
    var batchHalves: Int { 1 }
}
