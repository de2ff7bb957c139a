import ParaDiTTensor
import ParaDiTWeights

/// One forward pass's inputs of a model family, named as its diffusers `forward()` arguments.
public protocol TransformerInputs {
    /// The latents the image tokens come from: [B, C, H, W], or packed [B, tokens, C].
    var hiddenStates: Tensor { get }
    /// Samples `r` of the batch (views; per-sample lists sliced alike).
    func samples(_ r: Range<Int>) -> Self
    /// The samples of `parts` (at least one, same family and token grid) as one batch, in order:
    /// the inverse of `samples`, for serving several requests in one pass.
    static func concatenated(_ parts: [Self]) -> Self
}

extension TransformerInputs {
    public var batch: Int { hiddenStates.size(0) }
}

/// Inputs of one family, as one batch in order (`TransformerInputs.concatenated`).
public func concatenated(_ parts: [any TransformerInputs]) -> any TransformerInputs {
    func join<I: TransformerInputs>(_ first: I) -> any TransformerInputs {
        let typed = parts.compactMap { $0 as? I }
        check(typed.count == parts.count, "concatenated: inputs of different families")
        return I.concatenated(typed)
    }
    return join(parts[0])
}

/// The shape of one forward pass: what parallel validation, `CommVolume` and the planner read.
public struct TransformerProblem: Sendable, Equatable {
    public var batch: Int
    public var heads: Int
    public var headDim: Int
    /// The whole token grid (frames × rows × columns; an image is one frame), row-major.
    public var grid: TokenLayout
    /// Text tokens that join the image tokens in self-attention (SD3, Flux); 0 for none.
    public var jointTextTokens: Int
    /// Self- or joint-attention layers of one forward pass.
    public var attentionLayers: Int

    public init(batch: Int, heads: Int, headDim: Int, grid: TokenLayout, jointTextTokens: Int = 0, attentionLayers: Int) {
        (self.batch, self.heads, self.headDim, self.grid) = (batch, heads, headDim, grid)
        (self.jointTextTokens, self.attentionLayers) = (jointTextTokens, attentionLayers)
    }

    public var imageTokens: Int { grid.totalTokens }
    /// The attention width (heads · head dim).
    public var hidden: Int { heads * headDim }
}

/// A denoiser written serially as embed → block i → head: every parallel strategy (CFG split,
/// sequence sharding, PipeFusion stages, DistriFusion) drives a model through this protocol only,
/// so a model that conforms and registers its family (`ModelRegistry`) gets all of them.
///
/// A model knows nothing of ranks except the two things handed to it: the `TokenLayout` (which
/// tokens it embeds and positions) and the `AttentionRuntime` (every self/joint attention).
public protocol DiffusionTransformer: AnyObject {
    associatedtype Inputs: TransformerInputs
    /// What flows between blocks: the token streams and the per-pass conditioning.
    associatedtype State

    /// The diffusers class name (`_class_name`).
    var className: String { get }
    /// What its linears compute in (`Weights.compute` at build): under BF16 the parallel methods
    /// move activations between ranks as BF16.
    var compute: ComputeDType { get }
    /// Transformer blocks in forward order.
    var blockCount: Int { get }
    /// Lines for `paradit inspect`.
    var architecture: [String] { get }

    /// Refuses inputs the model cannot take (naming the input) and describes the pass.
    func problem(_ inputs: Inputs) throws -> TransformerProblem
    /// Embeds the tokens of `layout` (image tokens `layout.tokens`, joint text `layout.text`).
    func embed(_ inputs: Inputs, layout: TokenLayout) throws -> State
    /// Block i, on the state in place.
    func block(_ i: Int, _ state: inout State, attention: AttentionRuntime) throws
    /// The head on the image tokens held: [B, tokens here, values per token].
    func head(_ state: State) -> Tensor
    /// The head's tokens of whole grid rows as the forward output (unpatchified, or as the
    /// family returns it).
    func output(_ tokens: Tensor, grid: TokenLayout) -> Tensor

    /// PipeFusion: the streams that cross to the stage whose first block is `nextBlock`.
    func handOff(_ state: State, nextBlock: Int) -> [Tensor]
    /// The shapes `handOff` sends for `imageTokens` and `textTokens` tokens of `batch` samples.
    func handOffShapes(nextBlock: Int, batch: Int, imageTokens: Int, textTokens: Int) -> [[Int]]
    /// A locally embedded state (its conditioning) with the streams received from the previous stage.
    func resume(_ state: State, from tensors: [Tensor]) -> State

    /// TeaCache's signal: the image tokens entering block 0's attention, after its timestep
    /// modulation; nil for a family that does not expose it (TeaCache is then refused).
    func modulatedInput(_ state: State) -> Tensor?
    /// TeaCache's rescaling polynomial for this model, highest degree first, as published (nil:
    /// none is, and the change is used as it is).
    var teaCacheCoefficients: [Double]? { get }
    /// The state in the form `handOff(_:nextBlock:)` takes for `nextBlock` (`blockCount`: the head),
    /// without running blocks: what a step cache adds the skipped blocks' residual to (Flux joins its
    /// text and image streams after its double-stream blocks).
    func prepared(_ state: State, forBlock nextBlock: Int) -> State
}

extension DiffusionTransformer {
    public func modulatedInput(_ state: State) -> Tensor? { nil }
    public var teaCacheCoefficients: [Double]? { nil }
    public func prepared(_ state: State, forBlock nextBlock: Int) -> State { state }

    /// The whole forward pass on one rank: the serial definition every strategy must equal.
    public func forward(_ inputs: Inputs, attention: AttentionRuntime = SerialAttention()) throws -> Tensor {
        let grid = try problem(inputs).grid
        var state = try embed(inputs, layout: grid)
        for i in 0..<blockCount { try block(i, &state, attention: attention) }
        return output(head(state), grid: grid)
    }

    /// `inputs` as this model's own input type, or an error naming the mismatch.
    public func typed(_ inputs: any TransformerInputs) throws -> Inputs {
        guard let typed = inputs as? Inputs else {
            throw WeightsError.badInput(name: "inputs", reason: "\(type(of: inputs)) are not the inputs of a \(className)")
        }
        return typed
    }

    /// The forward pass on inputs of any type (refused unless they are this model's).
    public func forward(any inputs: any TransformerInputs, attention: AttentionRuntime = SerialAttention()) throws -> Tensor {
        try forward(typed(inputs), attention: attention)
    }

    /// `problem` on inputs of any type.
    public func problem(any inputs: any TransformerInputs) throws -> TransformerProblem {
        try problem(typed(inputs))
    }
}

/// [B, h·w, p·p·C] patch rows (channel fastest, then q, then p) → [B, C, h·p, w·p], as diffusers'
/// `einsum("nhwpqc->nchpwq")`: the output of the families that patchify a latent image.
public func unpatchify(_ x: Tensor, grid: TokenLayout, patchSize p: Int, channels c: Int) -> Tensor {
    let (h, w) = (grid.gridHeight, grid.gridWidth)
    check(grid.frames == 1, "unpatchify: \(grid.frames) frames, an image has one")
    check(x.size(1) == h * w && x.size(2) == p * p * c, "unpatchify: \(x.shape) does not match grid \(h)×\(w), patch \(p), \(c) channels")
    // [B, h, w, p, q, C] → [B, C, h, p, w, q]
    return permuted(x.reshaped([x.size(0), h, w, p, p, c]), [0, 5, 1, 3, 2, 4]).reshaped([x.size(0), c, h * p, w * p])
}

/// A block state of one token stream (plus per-pass conditioning that every stage embeds itself).
public protocol SingleStreamState {
    var hidden: Tensor { get set }
}

/// A model whose blocks carry one stream of `hiddenSize` features: its PipeFusion hand-off is
/// that stream.
public protocol SingleStreamTransformer: DiffusionTransformer where State: SingleStreamState {
    var hiddenSize: Int { get }
}

extension SingleStreamTransformer {
    public func handOff(_ s: State, nextBlock: Int) -> [Tensor] { [s.hidden] }

    public func handOffShapes(nextBlock: Int, batch: Int, imageTokens: Int, textTokens: Int) -> [[Int]] {
        [[batch, imageTokens, hiddenSize]]
    }

    public func resume(_ s: State, from tensors: [Tensor]) -> State {
        var s = s
        s.hidden = tensors[0]
        return s
    }
}
