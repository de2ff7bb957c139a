import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// The denoising loop of a pipeline, steppable one horizontal band of the latent image at a time
/// (PipeFusion's patches): each band has its own copy of the scheduler, so a multistep scheduler
/// keeps its history per band, and a band can be stepped as soon as its model output exists.
/// The schedulers here are elementwise, so stepping every band once per step gives the serial
/// loop's latents bit for bit; one band is the serial loop itself.
///
/// Bands are ranges of token rows of the transformer's patch grid (`gridRows` × `gridColumns`
/// tokens, row-major): a band of token rows is a contiguous token range and, in the latents, a
/// band of latent rows (Flux: of packed tokens).
public final class PatchSampler {
    let recipe: DenoisingRecipe
    var schedulers: [any Scheduler]
    var generator: TorchGenerator
    /// The current latents, as the loop holds them (doubled for DiT under guidance, packed for Flux).
    public private(set) var latents: Tensor
    public let timesteps: [Float]
    public let bands: [Range<Int>]
    /// The transformer's token grid.
    public let gridRows: Int, gridColumns: Int
    /// The variance noise of the step in progress, drawn whole once and cut per band.
    var stepNoise: (step: Int, noise: Tensor)?

    init(recipe: DenoisingRecipe, schedulerConfig: ConfigFile, seed: UInt64, steps: Int, bands count: Int) throws {
        self.recipe = recipe
        var scheduler = try makeScheduler(config: schedulerConfig)
        try recipe.setTimesteps(&scheduler, steps: steps)
        generator = TorchGenerator(seed: seed)
        latents = recipe.initialLatents(try generator.randn(recipe.noiseShape), initNoiseSigma: scheduler.initNoiseSigma)
        timesteps = scheduler.timesteps
        (gridRows, gridColumns) = recipe.tokenGrid
        guard count >= 1, count <= gridRows else {
            throw WeightsError.badInput(name: "patches", reason: "\(count) patches of whole token rows do not fit an image of \(gridRows) token rows; use 1...\(gridRows)")
        }
        bands = balancedSplit(gridRows, parts: count)
        schedulers = Array(repeating: scheduler, count: count)
    }

    /// The tokens of band m (the patch grid is row-major).
    public func tokens(ofBand m: Int) -> Range<Int> { (bands[m].lowerBound * gridColumns)..<(bands[m].upperBound * gridColumns) }

    /// The transformer's inputs at step i from the current latents (full size; a patch's pass
    /// embeds only its tokens).
    public func inputs(step i: Int) -> any TransformerInputs {
        let t = timesteps[i]
        return recipe.inputs(schedulers[0].scaleModelInput(latents, timestep: t), timestep: t)
    }

    /// Steps band m at step i from the transformer's output for that band's tokens: [B, Cout,
    /// band rows · patch, W] (Flux: [B, band tokens, C]), as the whole output restricted to the band.
    public func step(band m: Int, step i: Int, output: Tensor) throws {
        let t = timesteps[i]
        let sample = latentBand(latents, m)
        let next = try schedulers[m].step(modelOutput: recipe.modelOutput(output), timestep: t, sample: sample) { [self] shape in
            try noise(step: i, band: m, shape: shape)
        }
        // A NaN or Inf never heals: stop at the step that made it instead of writing a black image.
        guard allFinite(next) else {
            throw WeightsError.badInput(name: "latents", reason: "step \(i + 1) of \(timesteps.count) made NaN or Inf latents "
                                        + "(model output \(allFinite(output) ? "finite" : "not finite")); check --guidance, --steps and the weights")
        }
        setLatentBand(m, next)
    }

    /// Steps every band at step i from the whole output.
    public func stepAll(step i: Int, output: Tensor) throws {
        for m in bands.indices { try step(band: m, step: i, output: latentBand(output, m)) }
    }

    /// The latents of band m, to hand to another rank.
    public func latentBand(_ m: Int) -> Tensor { latentBand(latents, m) }

    /// Replaces band m of the latents (received from the rank that stepped it).
    public func setLatentBand(_ m: Int, _ band: Tensor) {
        guard bands.count > 1 else { latents = band; return }
        let (axis, range) = latentAxis(m)
        let full = latents.shape[axis], inner = latents.shape[(axis + 1)...].reduce(1, *)
        let outer = latents.count / (full * inner)
        check(band.count == outer * range.count * inner, "setLatentBand: \(band.shape) does not fit band \(m) of \(latents.shape)")
        copy(band.reshaped([outer, range.count * inner]).allColumns,
             into: latents.reshaped([outer, full * inner]).columns((range.lowerBound * inner)..<(range.upperBound * inner)))
    }

    /// Replaces the whole latents (received from the rank that stepped them).
    public func setLatents(_ x: Tensor) {
        check(x.shape == latents.shape, "setLatents: \(x.shape) is not the latents' \(latents.shape)")
        latents = x
    }

    /// Equal halves of the transformer batch (2 under classifier-free guidance).
    public var batchHalves: Int { recipe.batchHalves }
    /// Images this sampler makes (the noise batch).
    public var images: Int { recipe.noiseShape[0] }
    /// Rows of the transformer batch it feeds (images × halves).
    public var inputRows: Int { images * batchHalves }

    /// The final latents, as `TextToImagePipeline.denoise` returns them.
    public var finalLatents: Tensor { recipe.finalLatents(latents) }

    // MARK: Bands of tensors

    /// The axis a band of `tokenRows` cuts in a tensor laid out like the latents (or the model
    /// output: any channel count) on a `gridRows` × `gridColumns` token grid, and its range there:
    /// packed tokens [B, tokens, C] along the tokens, [B, C, H, W] along the latent rows.
    public static func bandAxis(of x: Tensor, tokenRows: Range<Int>, gridRows: Int, gridColumns: Int) -> (axis: Int, range: Range<Int>) {
        if x.rank == 3 { return (1, (tokenRows.lowerBound * gridColumns)..<(tokenRows.upperBound * gridColumns)) }
        let rowsPerToken = x.size(2) / gridRows
        return (2, (tokenRows.lowerBound * rowsPerToken)..<(tokenRows.upperBound * rowsPerToken))
    }

    func latentAxis(_ m: Int) -> (axis: Int, range: Range<Int>) {
        Self.bandAxis(of: latents, tokenRows: bands[m], gridRows: gridRows, gridColumns: gridColumns)
    }

    /// Band m of `x` (the latents, the noise or a whole model output); with one band, `x` itself.
    func latentBand(_ x: Tensor, _ m: Int) -> Tensor {
        guard bands.count > 1 else { return x }
        let (axis, range) = Self.bandAxis(of: x, tokenRows: bands[m], gridRows: gridRows, gridColumns: gridColumns)
        return slice(x, axis: axis, range)
    }

    func noise(step i: Int, band m: Int, shape: [Int]) throws -> Tensor {
        if stepNoise?.step != i { stepNoise = (i, try generator.randn(latents.shape)) }
        return latentBand(stepNoise!.noise, m)
    }
}

extension TextToImagePipeline {
    /// A sampler for `request` whose latent image is cut into `patches` bands of token rows.
    public func sampler(_ request: GenerationRequest, conditioning: Conditioning?, patches: Int = 1) throws -> PatchSampler {
        try PatchSampler(recipe: recipe(request, conditioning: conditioning), schedulerConfig: schedulerConfig,
                         seed: request.seed, steps: request.steps, bands: patches)
    }
}
