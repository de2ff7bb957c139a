import ParaDiTModels
import ParaDiTTensor

/// A patch's activations between the blocks of one model's forward pass: what a pipeline stage
/// runs its blocks on and hands to the next stage.
enum PatchActivations {
    case dit(Tensor, DiTInputs)
    case pixart(Tensor, PixArtTransformer2DModel.Conditioning)
    case sd3(SD3Transformer2DModel.State)
    case flux(FluxTransformer2DModel.State)
}

/// One model cut at block boundaries: a stage embeds a patch (stage 0 for its tokens, the others
/// only for the conditioning), runs its blocks, and passes the hidden states on; the last stage
/// applies the head.
struct PipelineStage {
    let model: AnyTransformer
    /// The blocks this stage runs.
    let blocks: Range<Int>

    /// The patch's embedding (image tokens `layout.tokens`, text tokens `layout.text`).
    func embed(_ inputs: ModelInputs, layout: TokenLayout) throws -> PatchActivations {
        switch (model, inputs) {
        case let (.dit(m), .dit(i)): return .dit(try m.embed(i, layout: layout), i)
        case let (.pixart(m), .pixart(i)):
            let (x, c) = try m.embed(i, layout: layout)
            return .pixart(x, c)
        case let (.sd3(m), .sd3(i)): return .sd3(try m.embed(i, layout: layout))
        case let (.flux(m), .flux(i)): return .flux(try m.embed(i, layout: layout))
        default: throw ParallelError.unsupported("inputs of another model class than \(model.className)")
        }
    }

    func run(_ a: inout PatchActivations, runtime: AttentionRuntime, span: (String, () throws -> Void) throws -> Void) throws {
        for b in blocks {
            try span("block \(b)") {
                switch (model, a) {
                case let (.dit(m), .dit(x, i)): try m.block(b, x, inputs: i, runtime: runtime)
                case let (.pixart(m), .pixart(x, c)): try m.block(b, x, c, runtime: runtime)
                case let (.sd3(m), .sd3(s)): try m.block(b, s, runtime: runtime)
                case let (.flux(m), .flux(s)):
                    var state = s
                    try m.block(b, &state, runtime: runtime)
                    a = .flux(state)
                default: preconditionFailure("activations of another model")
                }
            }
        }
    }

    /// What crosses to the stage whose first block is `next`: the image (or joined) stream, and
    /// the text stream while it is separate.
    static func handOff(_ a: PatchActivations, next: Int, model: AnyTransformer) -> [Tensor] {
        switch (a, model) {
        case let (.dit(x, _), _), let (.pixart(x, _), _): return [x]
        case let (.sd3(s), _): return [s.hidden, s.context]
        case let (.flux(s), .flux(m)): return next <= m.transformerBlocks.count ? [s.hidden, s.context] : [s.hidden]
        default: preconditionFailure("activations of another model")
        }
    }

    /// The shapes `handOff` sends for a patch of `image` and `text` tokens, batch b, width w.
    static func handOffShapes(next: Int, model: AnyTransformer, batch b: Int, image: Int, text: Int) -> [[Int]] {
        let w = model.attentionLayers.hidden
        switch model {
        case .dit, .pixart: return [[b, image, w]]
        case .sd3: return [[b, image, w], [b, text, w]]
        case let .flux(m): return next <= m.transformerBlocks.count ? [[b, image, w], [b, text, w]] : [[b, text + image, w]]
        }
    }

    /// The activations with the received streams in place of the locally embedded ones.
    static func receive(_ a: PatchActivations, _ t: [Tensor]) -> PatchActivations {
        switch a {
        case let .dit(_, i): return .dit(t[0], i)
        case let .pixart(_, c): return .pixart(t[0], c)
        case var .sd3(s):
            (s.hidden, s.context) = (t[0], t[1])
            return .sd3(s)
        case var .flux(s):
            // After the join the text length is all the blocks need of `context`.
            s.hidden = t[0]
            if t.count == 2 { s.context = t[1] }
            return .flux(s)
        }
    }

    /// The head on this rank's tokens: [B, tokens, patch²·Cout] (Flux: [B, image tokens, C]).
    func headTokens(_ a: PatchActivations) -> Tensor {
        switch (model, a) {
        case let (.dit(m), .dit(x, i)): return m.headPatches(x, inputs: i)
        case let (.pixart(m), .pixart(x, c)): return m.headPatches(x, c)
        case let (.sd3(m), .sd3(s)): return m.headPatches(s)
        case let (.flux(m), .flux(s)): return m.head(s)
        default: preconditionFailure("activations of another model")
        }
    }

    /// The head's tokens of a patch of whole token rows as the output band [B, Cout, rows·patch, W]
    /// (Flux's output stays packed: [B, tokens, C]).
    func band(_ tokens: Tensor, rows: Int, columns: Int) -> Tensor {
        let grid = TokenLayout(gridHeight: rows, gridWidth: columns)
        switch model {
        case let .dit(m): return unpatchify(tokens, layout: grid, patchSize: m.config.patchSize, channels: m.config.outputChannels)
        case let .pixart(m): return unpatchify(tokens, layout: grid, patchSize: m.config.patchSize, channels: m.config.outputChannels)
        case let .sd3(m): return unpatchify(tokens, layout: grid, patchSize: m.config.patchSize, channels: m.config.outputChannels)
        case .flux: return tokens
        }
    }
}

extension ParallelConfig {
    /// The blocks of each PipeFusion stage for a model of `blockCount` blocks: the explicit
    /// counts of `stageBlocks`, or an even split (earlier stages one longer).
    public func stageBlockRanges(blockCount: Int) throws -> [Range<Int>] {
        guard let explicit = stageBlocks else {
            guard pipefusion <= blockCount else {
                throw ParallelError.unsupported("pipefusion=\(pipefusion) needs at least one block per stage, but the model has \(blockCount); lower pipefusion")
            }
            return balancedSplit(blockCount, parts: pipefusion)
        }
        guard explicit.count == pipefusion, explicit.allSatisfy({ $0 >= 1 }), explicit.reduce(0, +) == blockCount else {
            throw ParallelError.unsupported("--stage-blocks \(explicit.map(String.init).joined(separator: ",")) must give \(pipefusion) positive counts summing to the model's \(blockCount) blocks")
        }
        var start = 0
        return explicit.map { n in defer { start += n }; return start..<(start + n) }
    }
}

extension AnyTransformer {
    /// Transformer blocks in forward order (Flux: double-stream, then single-stream).
    public var blockCount: Int {
        switch self {
        case let .dit(m): return m.blockCount
        case let .pixart(m): return m.blockCount
        case let .sd3(m): return m.blockCount
        case let .flux(m): return m.blockCount
        }
    }
}
