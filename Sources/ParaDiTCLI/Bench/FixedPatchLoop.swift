import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor

/// PipeFusion's loop on a benchmark's fixed inputs: every step feeds the same inputs, stepping a
/// band does nothing, and the bands passed back to stage 0 are slices of the input latents (the
/// size a real loop sends). Times the pipeline, not a scheduler.
final class FixedPatchLoop: PatchLoop {
    let fixed: ModelInputs
    let timesteps: [Float]
    let bands: [Range<Int>]
    let gridRows: Int, gridColumns: Int
    private(set) var latents: Tensor

    init(inputs: ModelInputs, model: AnyTransformer, steps: Int, patches: Int) throws {
        fixed = inputs
        timesteps = Array(repeating: 0, count: steps)
        switch (model, inputs) {
        case let (.dit(m), .dit(i)):
            latents = i.hiddenStates
            (gridRows, gridColumns) = (i.hiddenStates.size(2) / m.config.patchSize, i.hiddenStates.size(3) / m.config.patchSize)
        case let (.pixart(m), .pixart(i)):
            latents = i.hiddenStates
            (gridRows, gridColumns) = (i.hiddenStates.size(2) / m.config.patchSize, i.hiddenStates.size(3) / m.config.patchSize)
        case let (.sd3(m), .sd3(i)):
            latents = i.hiddenStates
            (gridRows, gridColumns) = (i.hiddenStates.size(2) / m.config.patchSize, i.hiddenStates.size(3) / m.config.patchSize)
        case let (.flux, .flux(i)):
            latents = i.hiddenStates
            // img_ids rows are (0, row, column) of each packed token.
            let ids = i.imgIds.scalars
            gridColumns = Int(stride(from: 2, to: ids.count, by: 3).map { ids[$0] }.max()!) + 1
            gridRows = i.imgIds.size(0) / gridColumns
        default:
            throw ParallelError.unsupported("inputs of another model class than \(model.className)")
        }
        guard patches <= gridRows else {
            throw ParallelError.unsupported("\(patches) patches of whole token rows do not fit \(gridRows) token rows; lower --patches")
        }
        bands = balancedSplit(gridRows, parts: patches)
    }

    func tokens(ofBand m: Int) -> Range<Int> { (bands[m].lowerBound * gridColumns)..<(bands[m].upperBound * gridColumns) }
    func inputs(step i: Int) -> ModelInputs { fixed }
    func step(band m: Int, step i: Int, output: Tensor) throws {}
    func stepAll(step i: Int, output: Tensor) throws {}

    func latentBand(_ m: Int) -> Tensor {
        let (axis, range) = PatchSampler.bandAxis(of: latents, tokenRows: bands[m], gridRows: gridRows, gridColumns: gridColumns)
        return slice(latents, axis: axis, range)
    }

    func setLatentBand(_ m: Int, _ band: Tensor) {}
    func setLatents(_ x: Tensor) {}
}
