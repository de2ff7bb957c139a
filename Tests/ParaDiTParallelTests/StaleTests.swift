import Foundation
import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights
import Testing

let pipelineFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("ParaDiTDiffusionTests/Fixtures/pipelines").path

/// A fixture pipeline's request and conditioning (tools/make_pipeline_fixtures.py).
func fixtureRequest(_ name: String) throws -> (TextToImagePipeline, GenerationRequest, Conditioning?) {
    let dir = "\(pipelineFixtures)/\(name)"
    let args = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/args.json"))) as! [String: Any]
    let isDiT = args["pipeline"] as? String == "DiTPipeline"
    let request = GenerationRequest(seed: UInt64(args["seed"] as! Int), steps: args["steps"] as! Int,
                                    guidanceScale: (args["guidance_scale"] as! NSNumber).doubleValue,
                                    height: isDiT ? nil : args["height"] as? Int, width: isDiT ? nil : args["width"] as? Int,
                                    classLabels: args["class_labels"] as? [Int] ?? [])
    let conditioning = isDiT ? nil : try Conditioning(file: SafeTensorsFile(path: "\(dir)/conditioning.safetensors"))
    return (try TextToImagePipeline.load(directory: "\(dir)/pipeline"), request, conditioning)
}

@Suite("DistriFusion: exact while warming up, measurably stale after")
struct StaleTests {
    /// Final latents of a generation split as `config` with `warmup` synchronous steps.
    func generate(_ name: String, _ config: ParallelConfig, warmup: Int) throws -> (parallel: Tensor, serial: Tensor) {
        let (pipeline, request, conditioning) = try fixtureRequest(name)
        let serial = try pipeline.denoise(request, conditioning: conditioning, denoiser: { try pipeline.transformer.forward(any: $0) })
        let box = UncheckedBox((pipeline, request, conditioning))
        let ranks = try LocalWorld.run(size: config.worldSize, timeout: 60) { comm in
            let (pipeline, request, conditioning) = box.value
            let parallel = ParallelTransformer(model: pipeline.transformer, context: try ParallelContext(config: config, world: comm),
                                               warmupSteps: warmup)
            let latents = try pipeline.denoise(request, conditioning: conditioning, denoiser: { try parallel.forward($0) })
            try parallel.finish()
            return UncheckedBox(latents)
        }
        return (ranks[0].value, serial)
    }

    @Test("with warm-up ≥ steps the latents equal serial", arguments: ["dit", "pixart", "sd3", "flux"])
    func warm(name: String) throws {
        let (parallel, serial) = try generate(name, .init(distrifusion: 2), warmup: 10)
        #expect(relativeL2(parallel, serial) <= 1e-5)
    }

    @Test("with one warm-up step the latents differ from serial by a small, measured amount", arguments: ["dit", "pixart", "sd3", "flux"])
    func stale(name: String) throws {
        let (parallel, serial) = try generate(name, .init(distrifusion: 2), warmup: 1)
        let err = relativeL2(parallel, serial)
        #expect(err > 1e-5 && err < 0.5, "\(name): relative L2 \(err)")
    }

    @Test("hybrid with CFG: exact while warming up", arguments: ["dit", "pixart"])
    func cfgHybrid(name: String) throws {
        let (parallel, serial) = try generate(name, .init(cfg: 2, distrifusion: 2), warmup: 10)
        #expect(relativeL2(parallel, serial) <= 1e-5)
    }
}
