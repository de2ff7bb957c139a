import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTTensor

/// PipeFusion's loop on fixed inputs: every step feeds the same inputs, stepping keeps the last
/// whole output (a one-step run is one forward pass), and the bands passed back to stage 0 are
/// slices of the input latents (the size a real loop sends). Benchmarks time the pipeline with
/// it, not a scheduler.
public final class FixedPatchLoop: PatchLoop {
    let fixed: any TransformerInputs
    public let timesteps: [Float]
    public let bands: [Range<Int>]
    public let gridRows: Int, gridColumns: Int
    public private(set) var latents: Tensor
    /// The output of the last whole-image step (on the last stage).
    public private(set) var output: Tensor?

    /// `grid`: the model's token grid for `inputs` (`TransformerProblem.grid`).
    public init(inputs: any TransformerInputs, grid: TokenLayout, steps: Int, patches: Int) throws {
        fixed = inputs
        timesteps = Array(repeating: 0, count: steps)
        latents = inputs.hiddenStates
        (gridRows, gridColumns) = (grid.frames * grid.gridHeight, grid.gridWidth)
        guard patches <= gridRows else {
            throw ParallelError.unsupported("\(patches) patches of whole token rows do not fit \(gridRows) token rows; lower --patches")
        }
        bands = balancedSplit(gridRows, parts: patches)
    }

    public func tokens(ofBand m: Int) -> Range<Int> { (bands[m].lowerBound * gridColumns)..<(bands[m].upperBound * gridColumns) }
    public func inputs(step i: Int) -> any TransformerInputs { fixed }
    public func step(band m: Int, step i: Int, output: Tensor) throws {}
    public func stepAll(step i: Int, output: Tensor) throws { self.output = output }

    public func latentBand(_ m: Int) -> Tensor {
        let (axis, range) = PatchSampler.bandAxis(of: latents, tokenRows: bands[m], gridRows: gridRows, gridColumns: gridColumns)
        return slice(latents, axis: axis, range)
    }

    public func setLatentBand(_ m: Int, _ band: Tensor) {}
    public func setLatents(_ x: Tensor) {}
}
