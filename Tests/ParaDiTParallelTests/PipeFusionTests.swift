import Foundation
import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import Testing

@Suite("PipeFusion: patch-wise sampling, exact while warming up, measurably stale after")
struct PipeFusionTests {
    /// Serial final latents, and every rank's under `config` with `warmup` synchronous steps.
    func generate(_ name: String, _ config: ParallelConfig, warmup: Int) throws -> (ranks: [Tensor], serial: Tensor, sent: [[String: Int]]) {
        let (pipeline, request, conditioning) = try fixtureRequest(name)
        let serial = try pipeline.denoise(request, conditioning: conditioning, denoiser: { try pipeline.transformer.forward(any: $0) })
        let box = UncheckedBox((pipeline, request, conditioning))
        let ranks = try LocalWorld.run(size: config.worldSize, timeout: 60) { comm in
            let (pipeline, request, conditioning) = box.value
            let context = try ParallelContext(config: config, world: comm)
            let latents = try pipeline.denoise(request, conditioning: conditioning, context: context, warmupSteps: warmup)
            let sent = Dictionary(uniqueKeysWithValues: context.groups.map { ($0.axis, $0.comm.stats.totalSent) })
            return UncheckedBox((latents, sent))
        }
        return (ranks.map { $0.value.0 }, serial, ranks.map { $0.value.1 })
    }

    @Test("stepping the latents band by band, each band with its own scheduler, is the serial loop bit for bit",
          arguments: ["dit", "pixart", "sd3", "flux"])
    func bands(name: String) throws {
        let (pipeline, request, conditioning) = try fixtureRequest(name)
        let serial = try pipeline.denoise(request, conditioning: conditioning, denoiser: { try pipeline.transformer.forward(any: $0) })
        let sampler = try pipeline.sampler(request, conditioning: conditioning, patches: 2)
        for i in sampler.timesteps.indices {
            try sampler.stepAll(step: i, output: pipeline.transformer.forward(any: sampler.inputs(step: i)))
        }
        #expect(sampler.finalLatents.scalars == serial.scalars)
    }

    @Test("more patches than token rows are refused")
    func tooManyPatches() throws {
        let (pipeline, request, conditioning) = try fixtureRequest("sd3")
        #expect(throws: (any Error).self) { try pipeline.sampler(request, conditioning: conditioning, patches: 3) }
    }

    @Test("with warm-up ≥ steps every rank's latents equal serial", arguments: ["dit", "pixart", "sd3", "flux"])
    func warm(name: String) throws {
        let (ranks, serial, _) = try generate(name, .init(pipefusion: 2), warmup: 10)
        for latents in ranks { #expect(relativeL2(latents, serial) <= 1e-5, "\(name)") }
    }

    @Test("with one warm-up step the latents differ from serial by a small, measured amount", arguments: ["dit", "pixart", "sd3", "flux"])
    func stale(name: String) throws {
        let (ranks, serial, _) = try generate(name, .init(pipefusion: 2), warmup: 1)
        let err = relativeL2(ranks[0], serial)
        #expect(err > 1e-6 && err < 0.5, "\(name): relative L2 \(err)")
        #expect(ranks[1].scalars == ranks[0].scalars)
    }

    @Test("hybrid with CFG and uneven stages: exact while warming up")
    func cfgHybrid() throws {
        let (ranks, serial, _) = try generate("pixart", .init(cfg: 2, pipefusion: 2, patches: 3, stageBlocks: [1, 1]), warmup: 10)
        for latents in ranks { #expect(relativeL2(latents, serial) <= 1e-5) }
        let stale = try generate("dit", .init(cfg: 2, pipefusion: 2, patches: 4), warmup: 1)
        #expect(relativeL2(stale.ranks[0], stale.serial) > 1e-6)
    }

    @Test("hybrid with Ulysses or Ring inside each stage: exact while warming up", arguments: ["dit", "pixart", "sd3", "flux"])
    func sequenceHybrid(name: String) throws {
        for config in [ParallelConfig(ulysses: 2, pipefusion: 2), ParallelConfig(ring: 2, pipefusion: 2)] {
            let (ranks, serial, _) = try generate(name, config, warmup: 10)
            for latents in ranks { #expect(relativeL2(latents, serial) <= 1e-5, "\(name) \(config)") }
        }
    }

    @Test("hybrid of all three (cfg·pipefusion·ulysses): exact warm, stale and identical on every rank after")
    func fullHybrid() throws {
        let config = ParallelConfig(cfg: 2, ulysses: 2, pipefusion: 2)
        let (warm, serial, _) = try generate("pixart", config, warmup: 10)
        for latents in warm { #expect(relativeL2(latents, serial) <= 1e-5) }
        let (stale, _, _) = try generate("pixart", config, warmup: 1)
        #expect(relativeL2(stale[0], serial) > 1e-6)
        for latents in stale { #expect(latents.scalars == stale[0].scalars) }
        // CFG and Ulysses are exact, so the hybrid is as stale as PipeFusion alone.
        let (alone, _, _) = try generate("pixart", .init(pipefusion: 2), warmup: 1)
        #expect(relativeL2(stale[0], alone[0]) <= 1e-5)
    }

    @Test("bytes per step: every stage but the last sends its patches' activations once, p·hs per sample")
    func bytes() throws {
        let (pipeline, request, conditioning) = try fixtureRequest("pixart")
        let (ranks, _, sent) = try generate("pixart", .init(pipefusion: 2), warmup: 1)
        let inputs = try pipeline.sampler(request, conditioning: conditioning).inputs(step: 0)
        let m = pipeline.transformer, p = try m.problem(any: inputs)
        let (tokens, batch) = (p.imageTokens, p.batch)
        let perStep = CommVolume(config: .init(pipefusion: 2), problem: p).pipefusionBytes
        #expect(perStep == 4 * batch * tokens * p.hidden)
        #expect(sent[0]["pipefusion"] == request.steps * perStep)
        // The last stage sends back each step's new latents but the last one's, which it broadcasts.
        #expect(sent[1]["pipefusion"] == request.steps * 4 * ranks[0].count)
        // Inside a stage, Ulysses moves the USP volume of the stage's own layers.
        let hybrid = ParallelConfig(ulysses: 2, pipefusion: 2)
        let (_, _, hybridSent) = try generate("pixart", hybrid, warmup: 1)
        let stageLayers = try hybrid.stageBlockRanges(blockCount: m.blockCount)[0].count
        let ulysses = CommVolume(config: hybrid, problem: p, layers: stageLayers).ulyssesBytes
        #expect(ulysses > 0 && hybridSent[0]["ulysses"] == request.steps * ulysses)
        #expect(hybridSent[0]["pipefusion"] == request.steps * perStep / 2)
    }

    @Test("each stage can load only its blocks' weights and still gives the serial latents", arguments: ["dit", "pixart", "sd3", "flux"])
    func stageWeights(name: String) throws {
        let (pipeline, request, conditioning) = try fixtureRequest(name)
        let serial = try pipeline.denoise(request, conditioning: conditioning, denoiser: { try pipeline.transformer.forward(any: $0) })
        let directory = "\(pipelineFixtures)/\(name)/pipeline", config = ParallelConfig(pipefusion: 2)
        let box = UncheckedBox((request, conditioning))
        let ranks = try LocalWorld.run(size: 2, timeout: 60) { comm in
            let context = try ParallelContext(config: config, world: comm)
            let blocks = try config.stageBlockRanges(blockCount: pipeline.transformer.blockCount)[context.stageIndex]
            let stage = try TextToImagePipeline.load(directory: directory, keepingBlocks: blocks)
            let latents = try stage.denoise(box.value.0, conditioning: box.value.1, context: context, warmupSteps: 10)
            return UncheckedBox((latents, stage.transformerParameters))
        }
        for rank in ranks {
            #expect(relativeL2(rank.value.0, serial) <= 1e-5)
            let (held, total) = rank.value.1
            #expect(held < total && held > 0, "\(name): \(held) of \(total)")
        }
        #expect(ranks[0].value.1.total == pipeline.transformerParameters.total)
        // Blocks are split between the stages; the embeddings and the head are on both.
        let (held, total) = (ranks[0].value.1.held + ranks[1].value.1.held, ranks[0].value.1.total)
        #expect(held > total && held < 2 * total)
    }

    @Test("a configuration PipeFusion cannot run is refused with what to change")
    func refused() throws {
        let (pipeline, request, conditioning) = try fixtureRequest("dit")
        let box = UncheckedBox((pipeline, request, conditioning))
        #expect(throws: (any Error).self) {
            _ = try LocalWorld.run(size: 3, timeout: 30) { comm in
                let (pipeline, request, conditioning) = box.value
                let context = try ParallelContext(config: .init(pipefusion: 3), world: comm)
                return UncheckedBox(try pipeline.denoise(request, conditioning: conditioning, context: context, warmupSteps: 1))
            }
        }
        #expect(throws: ParallelError.self) { try ParallelConfig(distrifusion: 2, pipefusion: 2).validate(.init(batch: 2, heads: 4, headDim: 8, grid: .init(gridHeight: 4, gridWidth: 4), attentionLayers: 2)) }
    }
}
