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
    public let model: any DiffusionTransformer
    public let context: ParallelContext
    /// Synchronous steps before DistriFusion uses stale K/V.
    public let warmupSteps: Int
    var distrifusion: DistriFusionAttention?
    /// The step cache of this generation (every rank holds its own, and they decide together).
    public let cache: StepCache?

    public init(model: any DiffusionTransformer, context: ParallelContext, warmupSteps: Int = 4, cache: StepCache? = nil) {
        self.model = model
        self.context = context
        self.warmupSteps = warmupSteps
        self.cache = cache
    }

    /// Completes communication still in flight (DistriFusion's last gathers); call after the last step.
    public func finish() throws { try distrifusion?.finish() }

    /// The whole output on every rank.
    public func forward(_ inputs: any TransformerInputs) throws -> Tensor {
        try forward(model, inputs)
    }

    func forward<M: DiffusionTransformer>(_ model: M, _ any: any TransformerInputs) throws -> Tensor {
        let inputs = try model.typed(any)
        let problem = try model.problem(inputs)
        try context.config.validate(problem)
        guard context.config.pipefusion == 1 else {
            throw ParallelError.unsupported("pipefusion=\(context.config.pipefusion) runs through PipeFusion, not a ParallelTransformer")
        }
        let per = problem.batch / context.config.cfg
        let mine = inputs.samples((context.cfgIndex * per)..<((context.cfgIndex + 1) * per))
        let shards = SequenceShards(imageTokens: problem.imageTokens, textTokens: problem.jointTextTokens,
                                    degree: context.config.sequenceDegree, splitText: context.config.distrifusion == 1)
        let out = try context.span("forward") { try shardedForward(model, mine, grid: problem.grid, shards: shards) }
        guard let cfg = context.cfgGroup else { return out }
        let all = Tensor(uninitialized: [problem.batch] + out.shape.dropFirst())
        try cfg.allGather(out, into: all)
        return all
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

    /// This rank's shard through every block; the head's rows gathered into the whole output.
    func shardedForward<M: DiffusionTransformer>(_ model: M, _ inputs: M.Inputs, grid: TokenLayout,
                                                 shards: SequenceShards) throws -> Tensor {
        let runtime = runtime(shards), r = context.sequenceIndex
        var state = try model.embed(inputs, layout: grid.holding(shards.image[r], text: shards.text?[r]))
        func blocks(_ range: Range<Int>, _ state: inout M.State) throws {
            for b in range { try context.span("block \(b)") { try model.block(b, &state, attention: runtime) } }
        }
        if let cache, model.blockCount > 1 {
            try cache.run(model, &state, change: { sums in
                let buffer = Tensor(shape: [sums.count], values: sums.map(Float.init))
                try context.world.allReduce(buffer)
                return buffer.scalars.map(Double.init)
            }, blocks: blocks)
        } else {
            try blocks(0..<model.blockCount, &state)
        }
        return model.output(try gatherTokens(model.head(state), shards), grid: grid)
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
    try group.allGather(x, into: blocks, counts: tokens.map { b * $0 * w })
    guard b > 1 else { return blocks.reshaped([1, total, w]) }
    // Blocks are [rank][sample][tokens][W]; the output is [sample][token][W].
    let out = Tensor(uninitialized: [b, total, w])
    var src = 0, at = 0
    for n in tokens {
        copySequence(blocks.block(src, [b, n, w]), into: out, at: at)
        src += b * n * w
        at += n
    }
    return out
}
