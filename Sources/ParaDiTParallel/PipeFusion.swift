import Foundation
import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTTensor

/// What PipeFusion steps: the latent image cut into bands of token rows, each stepped by its own
/// scheduler as soon as its output exists. `PatchSampler` is the real loop; benchmarks drive the
/// same pipeline with fixed inputs.
public protocol PatchLoop: AnyObject {
    var timesteps: [Float] { get }
    var bands: [Range<Int>] { get }
    var gridRows: Int { get }
    var gridColumns: Int { get }
    var latents: Tensor { get }
    func tokens(ofBand m: Int) -> Range<Int>
    func inputs(step i: Int) -> any TransformerInputs
    func step(band m: Int, step i: Int, output: Tensor) throws
    func stepAll(step i: Int, output: Tensor) throws
    func latentBand(_ m: Int) -> Tensor
    func setLatentBand(_ m: Int, _ band: Tensor)
    func setLatents(_ x: Tensor)
}

extension PatchSampler: PatchLoop {}

/// PipeFusion (xDiT): the model's blocks split into stages, one per rank of the pipeline group,
/// and the latent image into patches (bands of token rows) that flow through the stages one after
/// another. Each stage attends with `PipeFusionAttention` (the patch's fresh K/V, the others' from
/// the last time they passed), the last stage steps the scheduler per patch and sends the new patch
/// latents back to stage 0, which starts the next step's first patch while the last stage is
/// still on this step's last: consecutive steps overlap and no stage idles once the pipe is full.
/// The first `warmupSteps` steps (at least one, which fills the K/V buffers) pass the whole image
/// through the stages synchronously and equal serial.
///
/// Every receive (a patch's activations, a patch's new latents) is posted one message ahead, so
/// it lands while the stage computes.
public final class PipeFusion {
    public let model: any DiffusionTransformer
    public let context: ParallelContext
    public let warmupSteps: Int
    /// The step cache, per patch (`StepCache`); its decision travels with each patch's activations.
    public let cache: StepCache?
    let stages: [Range<Int>]

    /// One pass through the stages: step i's whole image (patch nil) or its patch m.
    struct Item { var step: Int, patch: Int? }

    public init(model: any DiffusionTransformer, context: ParallelContext, warmupSteps: Int = 1, cache: StepCache? = nil) throws {
        let c = context.config
        guard c.pipefusion > 1, context.pipelineGroup != nil else { throw ParallelError.unsupported("PipeFusion needs pipefusion ≥ 2") }
        (self.model, self.context, self.warmupSteps, self.cache) = (model, context, max(1, warmupSteps), cache)
        stages = try c.stageBlockRanges(blockCount: model.blockCount)
    }

    var isFirst: Bool { context.stageIndex == 0 }
    var isLast: Bool { context.stageIndex == stages.count - 1 }

    /// Runs the denoising loop of `sampler`; afterwards every rank's sampler holds the final
    /// latents. `onStep(i, n, seconds)` follows each step on this rank.
    public func run(_ sampler: PatchLoop, onStep: (Int, Int, Double) -> Void = { _, _, _ in }) throws {
        let first = sampler.inputs(step: 0)
        let problem = try model.problem(any: first)
        try context.config.validate(problem)
        let n = sampler.timesteps.count
        let items = (0..<n).flatMap { i in i < warmupSteps ? [Item(step: i, patch: nil)] : sampler.bands.indices.map { Item(step: i, patch: $0) } }
        let text = balancedSplit(problem.jointTextTokens, parts: sampler.bands.count)
        let sp = context.config.sequenceDegree, patches = sampler.bands.count
        if problem.jointTextTokens > 0 && problem.jointTextTokens < patches * sp {
            throw ParallelError.unsupported("\(patches) patches × \(sp) sequence-parallel ranks split the \(problem.jointTextTokens) text tokens; lower --patches, ulysses or ring")
        }
        if let smallest = sampler.bands.indices.map({ sampler.tokens(ofBand: $0).count }).min(), smallest < sp {
            throw ParallelError.unsupported("a patch of \(smallest) tokens cannot be split over \(sp) sequence-parallel ranks; lower --patches, ulysses or ring")
        }
        let pass = PipeFusionPass(runner: self, sampler: sampler, items: items, text: text, problem: problem)
        var last = DispatchTime.now().uptimeNanoseconds
        for (k, item) in items.enumerated() {
            try context.span(item.patch.map { "step \(item.step) patch \($0)" } ?? "step \(item.step)") { try pass.run(k) }
            if k + 1 == items.count || items[k + 1].step != item.step {
                let now = DispatchTime.now().uptimeNanoseconds
                onStep(item.step + 1, n, Double(now - last) / 1e9)
                last = now
            }
        }
        try pass.finish()
    }
}

extension PipeFusion {
    /// One forward pass through the stages: the whole image passes synchronously, as in a warm-up
    /// step, so it equals the serial forward; every rank returns the whole output.
    public func forward(_ inputs: any TransformerInputs) throws -> Tensor {
        let grid = try model.problem(any: inputs).grid
        let loop = try FixedPatchLoop(inputs: inputs, grid: grid, steps: 1, patches: context.config.patchCount)
        try run(loop)
        let pipe = context.pipelineGroup!, root = pipe.size - 1
        // The last stage holds the output; the others learn its shape, then its values.
        let dims = (loop.output?.shape ?? []).map(Float.init)
        let shape = Tensor(shape: [8], values: Array((dims + Array(repeating: -1, count: 8)).prefix(8)))
        try pipe.broadcast(shape, root: root)
        let out = loop.output ?? Tensor(uninitialized: shape.scalars.prefix { $0 >= 0 }.map { Int($0) })
        try pipe.broadcast(out, root: root)
        return out
    }
}

/// One run's state on one rank: the messages in flight and the K/V buffers.
final class PipeFusionPass {
    let runner: PipeFusion
    let sampler: PatchLoop
    let items: [PipeFusion.Item]
    let text: [Range<Int>]
    let problem: TransformerProblem
    let attention: PipeFusionAttention
    let pipe: Communicator
    /// Stage > 0: activations from the previous stage, one message per item.
    var activations: Inbox?
    /// Stage 0: new latents from the last stage, one message per item of every step but the last.
    var latents: Inbox?
    var latentItems: [Int] = []
    var consumed = 0
    var sends: [CommRequest] = []

    init(runner: PipeFusion, sampler: PatchLoop, items: [PipeFusion.Item], text: [Range<Int>], problem: TransformerProblem) {
        (self.runner, self.sampler, self.items, self.text, self.problem) = (runner, sampler, items, text, problem)
        attention = PipeFusionAttention(context: runner.context, textTokens: problem.jointTextTokens, imageTokens: problem.imageTokens)
        pipe = runner.context.pipelineGroup!
        let s = runner.context.stageIndex, batch = problem.batch / runner.context.config.cfg
        if s > 0 {
            let next = runner.stages[s].lowerBound
            activations = Inbox(comm: pipe, peer: s - 1, tag: MessageTag.pipefusionActivations, context: runner.context, name: "activations",
                                wire: handOffWire,
                                shapes: items.map { item in
                                    let mine = shards(item), r = runner.context.sequenceIndex
                                    let streams = runner.model.handOffShapes(nextBlock: next, batch: batch, imageTokens: mine.image[r].count,
                                                                             textTokens: mine.text[r].count)
                                    return streams + (runner.cache == nil ? [] : [[1]])
                                })
        }
        if runner.isFirst {
            latentItems = items.indices.filter { items[$0].step < items.last!.step }
            latents = Inbox(comm: pipe, peer: pipe.size - 1, tag: MessageTag.pipefusionLatents, context: runner.context, name: "latents",
                            wire: WireFormat(.f32), shapes: latentItems.map { [latentShape(items[$0])] })
        }
    }

    func tokens(_ item: PipeFusion.Item) -> Range<Int> { item.patch.map { sampler.tokens(ofBand: $0) } ?? 0..<problem.imageTokens }
    func textRange(_ item: PipeFusion.Item) -> Range<Int> { item.patch.map { text[$0] } ?? 0..<problem.jointTextTokens }
    func shards(_ item: PipeFusion.Item) -> PatchShards {
        PatchShards(image: tokens(item), text: textRange(item), degree: runner.context.config.sequenceDegree)
    }
    /// The hand-off between stages travels in the model's compute precision (the scheduler's latents in Float32).
    var handOffWire: WireFormat { WireFormat(compute: runner.model.compute) }
    func latentShape(_ item: PipeFusion.Item) -> [Int] { item.patch.map { sampler.latentBand($0).shape } ?? sampler.latents.shape }

    /// Item k on this rank's stage.
    func run(_ k: Int) throws { try run(k, runner.model) }

    func run<M: DiffusionTransformer>(_ k: Int, _ model: M) throws {
        let item = items[k], context = runner.context, blocks = runner.stages[context.stageIndex]
        if runner.isFirst { try receiveLatents(before: item) }
        let cfg = context.config.cfg, all = try model.typed(sampler.inputs(step: item.step)), per = all.batch / cfg
        let inputs = cfg > 1 ? all.samples((context.cfgIndex * per)..<((context.cfgIndex + 1) * per)) : all
        let patch = shards(item), r = context.sequenceIndex
        let layout = TokenLayout(gridHeight: sampler.gridRows, gridWidth: sampler.gridColumns, tokens: patch.image[r],
                                 text: problem.jointTextTokens > 0 ? patch.text[r] : nil)
        // Every stage embeds the patch for its conditioning; later stages take the streams received.
        var state = try model.embed(inputs, layout: layout)
        var decided: Bool?
        if let activations {
            var streams = try activations.take()
            // With a step cache the last tensor is the skip decision of stage 0.
            if runner.cache != nil { decided = streams.removeLast().scalars[0] > 0 }
            state = model.resume(state, from: streams)
        }
        attention.begin(patch)
        let skipped = try runBlocks(blocks, item, model, &state, decided: decided)
        if !runner.isLast {
            let flag = runner.cache == nil ? [] : [Tensor(shape: [1], values: [skipped ? 1 : 0])]
            try send(model.handOff(state, nextBlock: blocks.upperBound) + flag, to: context.stageIndex + 1,
                     tag: MessageTag.pipefusionActivations, wire: handOffWire)
            return
        }
        let rows = item.patch.map { sampler.bands[$0].count } ?? sampler.gridRows
        var tokens = model.head(state)
        if let group = context.sequenceGroup { tokens = try gatherSequence(tokens, tokens: patch.image.map(\.count), over: group) }
        var output = model.output(tokens, grid: TokenLayout(gridHeight: rows, gridWidth: sampler.gridColumns))
        if let group = context.cfgGroup {
            let all = Tensor(uninitialized: [output.size(0) * cfg] + output.shape.dropFirst())
            try group.allGather(output, into: all)
            output = all
        }
        if let m = item.patch { try sampler.step(band: m, step: item.step, output: output) } else { try sampler.stepAll(step: item.step, output: output) }
        if item.step < items.last!.step {
            try send([item.patch.map { sampler.latentBand($0) } ?? sampler.latents.copy()], to: 0,
                     tag: MessageTag.pipefusionLatents, wire: WireFormat(.f32))
        }
    }

    /// This stage's blocks on one pass, through the step cache when there is one; whether it skipped.
    func runBlocks<M: DiffusionTransformer>(_ blocks: Range<Int>, _ item: PipeFusion.Item, _ model: M, _ state: inout M.State,
                                            decided: Bool?) throws -> Bool {
        let context = runner.context
        func run(_ range: Range<Int>, _ state: inout M.State) throws {
            for b in range { try context.span("block \(b)") { try model.block(b, &state, attention: attention) } }
        }
        guard let cache = runner.cache, model.blockCount > 1 else {
            try run(blocks, &state)
            return false
        }
        let share = item.patch == nil ? 1 : 1 / Double(sampler.bands.count)
        return try cache.pass(model, &state, blocks: blocks, region: tokens(item), step: item.step, share: share, decided: decided,
                              change: { sums in
                                  // Stage 0's ranks: the sequence shards of the patch and both CFG halves.
                                  let buffer = Tensor(shape: [sums.count], values: sums.map(Float.init))
                                  try context.sequenceGroup?.allReduce(buffer)
                                  try context.cfgGroup?.allReduce(buffer)
                                  return buffer.scalars.map(Double.init)
                              }, run: run)
    }

    /// Stage 0: takes in the new latents up to those of the previous step's pass over `item`'s region.
    func receiveLatents(before item: PipeFusion.Item) throws {
        guard item.step > 0, let latents else { return }
        let needed = latentItems.lastIndex { i in
            items[i].step == item.step - 1 && (items[i].patch == nil || item.patch == nil || items[i].patch == item.patch)
        }!
        while consumed <= needed {
            let band = try latents.take()[0]
            if let m = items[latentItems[consumed]].patch { sampler.setLatentBand(m, band) } else { sampler.setLatents(band) }
            consumed += 1
        }
    }

    func send(_ tensors: [Tensor], to peer: Int, tag: Int, wire: WireFormat) throws {
        // Earlier sends have had a whole patch of compute to complete.
        for request in sends { try request.wait() }
        sends = try tensors.map { try pipe.isend(wire.encode($0), to: peer, tag: tag) }
    }

    /// Completes the sends and hands the last stage's final latents to every stage.
    func finish() throws {
        for request in sends { try request.wait() }
        sends = []
        let final = runner.isLast ? sampler.latents : Tensor(uninitialized: sampler.latents.shape)
        try pipe.broadcast(final, root: pipe.size - 1)
        if !runner.isLast { sampler.setLatents(final) }
    }
}

/// Messages from one peer on one tag, taken in order, each received into fresh tensors of known
/// shapes; the next message's receive is always posted before the current one is handed out.
final class Inbox {
    let comm: Communicator, peer: Int, tag: Int, context: ParallelContext, name: String
    let wire: WireFormat
    let shapes: [[[Int]]]
    var next = 0
    /// Messages posted, oldest first: their tensors' shapes, and the buffers receiving them as sent.
    var pending: [(shapes: [[Int]], buffers: [Tensor], requests: [CommRequest], posted: Double?)] = []

    init(comm: Communicator, peer: Int, tag: Int, context: ParallelContext, name: String, wire: WireFormat,
         shapes: [[[Int]]]) {
        (self.comm, self.peer, self.tag, self.context, self.name, self.shapes) = (comm, peer, tag, context, name, shapes)
        self.wire = wire
        post()
    }

    func post() {
        guard next < shapes.count else { return }
        let buffers = shapes[next].map { wire.buffer([$0.reduce(1, *)]) }
        let posted = context.tracer?.now()
        pending.append((shapes[next], buffers, buffers.map { comm.irecv(into: $0, from: peer, tag: tag) }, posted))
        next += 1
    }

    func take() throws -> [Tensor] {
        if pending.isEmpty { post() }
        let (shapes, buffers, requests, posted) = pending.removeFirst()
        post()
        for (t, r) in zip(buffers, requests) { try context.wait(r, name, posted: posted, bytes: 4 * t.count) }
        return zip(buffers, shapes).map { wire.decode($0, blocks: [$1.reduce(1, *)]).reshaped($1) }
    }
}
