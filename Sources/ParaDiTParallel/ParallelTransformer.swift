import ParaDiTDistributed
import ParaDiTModels
import ParaDiTTensor

/// A model's forward pass split over the ranks of a parallel context: the cfg group splits the
/// batch; inside it, every rank of the sequence group embeds, positions and runs the blocks on its
/// own token shard, with attention through `USPAttention` (exact) or `DistriFusionAttention`
/// (stale K/V after the warm-up steps); the head's token rows are gathered once over the sequence
/// group and the samples once over the cfg group, so every rank returns the whole output.
/// One instance serves the successive steps of a generation (DistriFusion keeps K/V between them).
public final class ParallelTransformer {
    public let model: AnyTransformer
    public let context: ParallelContext
    /// Synchronous steps before DistriFusion uses stale K/V.
    public let warmupSteps: Int
    var distrifusion: DistriFusionAttention?

    public init(model: AnyTransformer, context: ParallelContext, warmupSteps: Int = 4) {
        self.model = model
        self.context = context
        self.warmupSteps = warmupSteps
    }

    /// Completes communication still in flight (DistriFusion's last gathers); call after the last step.
    public func finish() throws { try distrifusion?.finish() }

    /// What the configuration must fit: batch, heads, image and joint text tokens.
    public func problem(_ inputs: ModelInputs) throws -> ParallelConfig.Problem {
        let heads: Int, tokens: Int
        switch (model, inputs) {
        case let (.dit(m), .dit(i)):
            heads = m.config.numAttentionHeads
            tokens = try m.layout(latentHeight: i.hiddenStates.size(2), latentWidth: i.hiddenStates.size(3)).totalTokens
        case let (.pixart(m), .pixart(i)):
            heads = m.config.numAttentionHeads
            tokens = try m.layout(latentHeight: i.hiddenStates.size(2), latentWidth: i.hiddenStates.size(3)).totalTokens
        case let (.sd3(m), .sd3(i)):
            heads = m.config.numAttentionHeads
            tokens = try m.layout(latentHeight: i.hiddenStates.size(2), latentWidth: i.hiddenStates.size(3)).totalTokens
        case let (.flux(m), .flux(i)):
            heads = m.config.numAttentionHeads
            tokens = m.layout(i).totalTokens
        default:
            throw ParallelError.unsupported("inputs of another model class than \(model.className)")
        }
        return .init(batch: inputs.batch, heads: heads, imageTokens: tokens, textTokens: inputs.jointTextTokens)
    }

    /// The shape `--parallel auto` plans for: batch, tokens in attention, width, heads, layers.
    public static func stepShape(model: AnyTransformer, inputs: ModelInputs) throws -> StepShape {
        let p = try ParallelTransformer(model: model, context: ParallelContext(config: ParallelConfig(), world: LocalCommunicator.single()))
            .problem(inputs)
        let (layers, hidden) = model.attentionLayers
        return StepShape(batch: p.batch, tokens: p.imageTokens + p.textTokens, hidden: hidden, heads: p.heads, layers: layers)
    }

    /// The whole output on every rank.
    public func forward(_ inputs: ModelInputs) throws -> Tensor {
        try context.config.validate(problem(inputs))
        let per = inputs.batch / context.config.cfg
        let mine = inputs.samples((context.cfgIndex * per)..<((context.cfgIndex + 1) * per))
        let shards = SequenceShards(imageTokens: try problem(inputs).imageTokens, textTokens: inputs.jointTextTokens,
                                    degree: context.config.sequenceDegree, splitText: context.config.distrifusion == 1)
        let out = try context.span("forward") { try shardedForward(mine, shards: shards) }
        guard let cfg = context.cfgGroup else { return out }
        let all = Tensor(uninitialized: [inputs.batch] + out.shape.dropFirst())
        try withExtendedLifetime(out) { try cfg.allGather(out.data, count: out.count, into: all.data, counts: nil) }
        return all
    }

    /// This rank's layout: its image shard of `full`, and its text shard when the text is split.
    func layout(_ full: TokenLayout, _ shards: SequenceShards) -> TokenLayout {
        let r = context.sequenceIndex
        return TokenLayout(gridHeight: full.gridHeight, gridWidth: full.gridWidth, tokens: shards.image[r], text: shards.text?[r])
    }

    /// The attention runtime of this step.
    func runtime(_ shards: SequenceShards) -> AttentionRuntime {
        guard shards.degree > 1 else { return SerialAttention() }
        guard context.config.distrifusion > 1 else { return USPAttention(context: context, shards: shards) }
        if distrifusion?.shards != shards {
            distrifusion = DistriFusionAttention(context: context, shards: shards, warmupSteps: warmupSteps)
        }
        distrifusion!.beginStep()
        return distrifusion!
    }

    func shardedForward(_ inputs: ModelInputs, shards: SequenceShards) throws -> Tensor {
        let runtime = runtime(shards)
        switch (model, inputs) {
        case let (.dit(m), .dit(i)):
            try m.check(i)
            let full = try m.layout(latentHeight: i.hiddenStates.size(2), latentWidth: i.hiddenStates.size(3))
            let x = try m.embed(i, layout: layout(full, shards))
            for b in 0..<m.blockCount { try context.span("block \(b)") { try m.block(b, x, inputs: i, runtime: runtime) } }
            return unpatchify(try gatherTokens(m.headPatches(x, inputs: i), shards), layout: full,
                              patchSize: m.config.patchSize, channels: m.config.outputChannels)
        case let (.pixart(m), .pixart(i)):
            try m.check(i)
            let full = try m.layout(latentHeight: i.hiddenStates.size(2), latentWidth: i.hiddenStates.size(3))
            let (x, c) = try m.embed(i, layout: layout(full, shards))
            for b in 0..<m.blockCount { try context.span("block \(b)") { try m.block(b, x, c, runtime: runtime) } }
            return unpatchify(try gatherTokens(m.headPatches(x, c), shards), layout: full,
                              patchSize: m.config.patchSize, channels: m.config.outputChannels)
        case let (.sd3(m), .sd3(i)):
            try m.check(i)
            let full = try m.layout(latentHeight: i.hiddenStates.size(2), latentWidth: i.hiddenStates.size(3))
            let s = try m.embed(i, layout: layout(full, shards))
            for b in 0..<m.blockCount { try context.span("block \(b)") { try m.block(b, s, runtime: runtime) } }
            return unpatchify(try gatherTokens(m.headPatches(s), shards), layout: full,
                              patchSize: m.config.patchSize, channels: m.config.outputChannels)
        case let (.flux(m), .flux(i)):
            var s = try m.embed(i, layout: layout(m.layout(i), shards))
            for b in 0..<m.blockCount { try context.span("block \(b)") { try m.block(b, &s, runtime: runtime) } }
            return try gatherTokens(m.head(s), shards)
        default:
            throw ParallelError.unsupported("inputs of another model class than \(model.className)")
        }
    }

    /// [B, this shard's tokens, W] → [B, all tokens, W] in token order, over the sequence group.
    func gatherTokens(_ x: Tensor, _ shards: SequenceShards) throws -> Tensor {
        guard let group = context.sequenceGroup else { return x }
        return try gatherSequence(x, tokens: shards.image.map(\.count), over: group)
    }
}

/// [B, tokens[rank], W] on each rank of `group` → [B, Σ tokens, W], ranks' tokens in rank order.
func gatherSequence(_ x: Tensor, tokens: [Int], over group: Communicator) throws -> Tensor {
    let (b, w) = (x.size(0), x.size(2)), total = tokens.reduce(0, +)
    let blocks = Tensor(uninitialized: [b * total * w])
    try withExtendedLifetime(x) { try group.allGather(x.data, count: x.count, into: blocks.data, counts: tokens.map { b * $0 * w }) }
    guard b > 1 else { return blocks.reshaped([1, total, w]) }
    // Blocks are [rank][sample][tokens][W]; the output is [sample][token][W].
    let out = Tensor(uninitialized: [b, total, w])
    var src = 0, at = 0
    for n in tokens {
        for i in 0..<b { (out.data + (i * total + at) * w).update(from: blocks.data + src + i * n * w, count: n * w) }
        src += b * n * w
        at += n
    }
    withExtendedLifetime(blocks) {}
    return out
}
