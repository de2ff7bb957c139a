import ParaDiTDistributed
import ParaDiTModels
import ParaDiTTensor

/// A model's forward pass split over the ranks of a parallel context (the exact methods):
/// the cfg group splits the batch; inside it, every rank of the sequence group embeds, positions
/// and runs the blocks on its own token shard, with attention through `USPAttention`; the head's
/// token rows are gathered once over the sequence group and the samples once over the cfg group,
/// so every rank returns the whole output, equal to the serial one within float32 noise.
public struct ParallelTransformer {
    public let model: AnyTransformer
    public let context: ParallelContext

    public init(model: AnyTransformer, context: ParallelContext) {
        self.model = model
        self.context = context
    }

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

    /// The whole output on every rank.
    public func forward(_ inputs: ModelInputs) throws -> Tensor {
        try context.config.validate(problem(inputs))
        let per = inputs.batch / context.config.cfg
        let mine = inputs.samples((context.cfgIndex * per)..<((context.cfgIndex + 1) * per))
        let shards = SequenceShards(imageTokens: try problem(inputs).imageTokens, textTokens: inputs.jointTextTokens,
                                    degree: context.config.sequenceDegree)
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

    func shardedForward(_ inputs: ModelInputs, shards: SequenceShards) throws -> Tensor {
        let runtime: AttentionRuntime = shards.degree > 1 ? USPAttention(context: context, shards: shards) : SerialAttention()
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
        let (b, w) = (x.size(0), x.size(2)), total = shards.image.last!.upperBound
        let counts = shards.image.map { b * $0.count * w }
        let blocks = Tensor(uninitialized: [b * total * w])
        try withExtendedLifetime(x) { try group.allGather(x.data, count: x.count, into: blocks.data, counts: counts) }
        guard b > 1 else { return blocks.reshaped([1, total, w]) }
        // Blocks are [rank][sample][tokens][W]; the output is [sample][token][W].
        let out = Tensor(uninitialized: [b, total, w])
        var src = 0
        for range in shards.image {
            for i in 0..<b {
                (out.data + (i * total + range.lowerBound) * w).update(from: blocks.data + src + i * range.count * w, count: range.count * w)
            }
            src += b * range.count * w
        }
        withExtendedLifetime(blocks) {}
        return out
    }
}
