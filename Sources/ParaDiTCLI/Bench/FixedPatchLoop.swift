import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor

/// PipeFusion's loop on a benchmark's fixed inputs: every step feeds the same inputs, stepping a
/// band does nothing, and the bands passed back to stage 0 are slices of the input latents (the
/// size a real loop sends). Times the pipeline, not a scheduler.
final class FixedPatchLoop: PatchLoop {
    let fixed: any TransformerInputs
    let timesteps: [Float]
    let bands: [Range<Int>]
    let gridRows: Int, gridColumns: Int
    private(set) var latents: Tensor

    /// `grid`: the model's token grid for `inputs` (`TransformerProblem.grid`).
    init(inputs: any TransformerInputs, grid: TokenLayout, steps: Int, patches: Int) throws {
        fixed = inputs
        timesteps = Array(repeating: 0, count: steps)
        latents = inputs.hiddenStates
        (gridRows, gridColumns) = (grid.frames * grid.gridHeight, grid.gridWidth)
        guard patches <= gridRows else {
            throw ParallelError.unsupported("\(patches) patches of whole token rows do not fit \(gridRows) token rows; lower --patches")
        }
        bands = balancedSplit(gridRows, parts: patches)
    }

    func tokens(ofBand m: Int) -> Range<Int> { (bands[m].lowerBound * gridColumns)..<(bands[m].upperBound * gridColumns) }
    func inputs(step i: Int) -> any TransformerInputs { fixed }
    func step(band m: Int, step i: Int, output: Tensor) throws {}
    func stepAll(step i: Int, output: Tensor) throws {}

    func latentBand(_ m: Int) -> Tensor {
        let (axis, range) = PatchSampler.bandAxis(of: latents, tokenRows: bands[m], gridRows: gridRows, gridColumns: gridColumns)
        return slice(latents, axis: axis, range)
    }

    func setLatentBand(_ m: Int, _ band: Tensor) {}
    func setLatents(_ x: Tensor) {}
}
