import Foundation
import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// The committed fixtures of tools/make_pipeline_fixtures.py: tiny pipelines run by diffusers.
let pipelineFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/pipelines").path

struct PipelineCase {
    let name: String
    let request: GenerationRequest
    let conditioning: Conditioning?
    let expected: SafeTensorsFile

    init(_ name: String) throws {
        let dir = "\(pipelineFixtures)/\(name)"
        let args = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/args.json"))) as! [String: Any]
        let isDiT = args["pipeline"] as? String == "DiTPipeline"
        request = GenerationRequest(seed: UInt64(args["seed"] as! Int), steps: args["steps"] as! Int,
                                    guidanceScale: (args["guidance_scale"] as! NSNumber).doubleValue,
                                    height: isDiT ? nil : args["height"] as? Int, width: isDiT ? nil : args["width"] as? Int,
                                    classLabels: args["class_labels"] as? [Int] ?? [])
        conditioning = isDiT ? nil : try Conditioning(file: SafeTensorsFile(path: "\(dir)/conditioning.safetensors"))
        expected = try SafeTensorsFile(path: "\(dir)/expected.safetensors")
        self.name = name
    }
}

func relL2(_ a: Tensor, _ b: Tensor) -> Double {
    let num = zip(a.scalars, b.scalars).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
    return (num / b.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
}

@Suite("Pipelines equal diffusers end to end")
struct PipelineTests {
    @Test("a step that makes NaN or Inf latents stops the run, naming the step", arguments: ["dit", "sd3", "flux"])
    func nonFinite(name: String) throws {
        let c = try PipelineCase(name)
        let pipeline = try TextToImagePipeline.load(directory: "\(pipelineFixtures)/\(name)/pipeline")
        var calls = 0
        do {
            _ = try pipeline.denoise(c.request, conditioning: c.conditioning, denoiser: { inputs in
                calls += 1
                let out = try pipeline.transformer.forward(any: inputs)
                return calls == 2 ? Tensor(shape: out.shape, repeating: .nan) : out
            })
            Issue.record("\(name): finished with NaN latents")
        } catch {
            #expect("\(error)".contains("step 2 of \(c.request.steps) made NaN or Inf latents"), "\(error)")
        }
    }

    @Test("seeded noise, final latents (relative L2 ≤ 1e-4) and 8-bit image (±1 on ≥ 99.9 %) equal diffusers",
          arguments: ["dit", "pixart", "sd3", "flux", "flux-schnell", "digits"])
    func endToEnd(name: String) throws {
        let c = try PipelineCase(name)
        let pipeline = try TextToImagePipeline.load(directory: "\(pipelineFixtures)/\(name)/pipeline")
        var steps = 0
        let latents = try pipeline.denoise(c.request, conditioning: c.conditioning, denoiser: { try pipeline.transformer.forward(any: $0) }) { i, n, _ in
            steps = i
            #expect(n == c.request.steps)
        }
        #expect(steps == c.request.steps)
        let expectedLatents = try c.expected.tensor("latents")
        #expect(latents.shape == expectedLatents.shape)
        let err = relL2(latents, expectedLatents)
        #expect(err <= 1e-4, "\(name): latents relative L2 \(err)")
        let decoded = try pipeline.decode(latents, request: c.request, conditioning: c.conditioning)
        let images = try VaeImageProcessor.postprocess(decoded)
        let reference = try c.expected.tensor("image")  // [B, H, W, 3] in [0, 1]
        let pixels = images.flatMap(\.pixels)
        #expect(pixels.count == reference.count)
        let off = zip(pixels, reference.scalars).filter { abs(Double($0.0) - Double(($0.1 * 255).rounded())) > 1 }.count
        #expect(Double(off) <= 0.001 * Double(pixels.count), "\(name): \(off) of \(pixels.count) pixels differ by more than 1/255")
    }

    @Test("the initial noise is torch's for the pipeline's seed and shape", arguments: ["dit", "pixart", "sd3", "flux", "digits"])
    func noise(name: String) throws {
        let c = try PipelineCase(name)
        let expected = try c.expected.tensor("noise")
        var generator = TorchGenerator(seed: c.request.seed)
        #expect(try generator.randn(expected.shape).scalars == expected.scalars)
    }
}

@Suite("Pipeline input errors are one line naming what to fix")
struct PipelineErrorTests {
    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "accepted" } catch { return "\(error)" }
    }

    @Test("folder parts, classes and sizes")
    func errors() throws {
        let dir = "\(pipelineFixtures)/sd3/pipeline"
        #expect(message { _ = try PipelineFolder(directory: "/nonexistent") }.contains("model_index.json"))
        #expect(message { _ = try PipelineFolder(directory: "\(pipelineFixtures)/sd3") }.contains("model_index.json"))
        let sd3 = try TextToImagePipeline.load(directory: dir)
        let c = try PipelineCase("sd3")
        var bad = c.request
        bad.height = 10
        #expect(message { try sd3.validate(bad, conditioning: c.conditioning) }.contains("height 10 is not a positive multiple of 4"))
        #expect(message { try sd3.validate(c.request, conditioning: nil) }.contains("needs --prompt (or --prompt-embeds)"))
        var narrow = c.conditioning!
        narrow.promptEmbeds = Tensor(zeros: [1, 7, 5])
        #expect(message { try sd3.validate(c.request, conditioning: narrow) }.contains("has shape [1, 7, 5], this model needs [1, 7, 12]"))
        var noNegative = c.conditioning!
        noNegative.negativePromptEmbeds = nil
        #expect(message { try sd3.validate(c.request, conditioning: noNegative) }.contains("negative_prompt_embeds"))
        let dit = try TextToImagePipeline.load(directory: "\(pipelineFixtures)/dit/pipeline")
        #expect(message { try dit.validate(GenerationRequest(steps: 2, guidanceScale: 4, classLabels: [5000]), conditioning: nil) }.contains("class 5000"))
    }

    @Test("an unknown scheduler class is named")
    func unknownScheduler() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-pipe-\(UUID())").path
        try FileManager.default.copyItem(atPath: "\(pipelineFixtures)/sd3/pipeline", toPath: tmp)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let path = "\(tmp)/scheduler/scheduler_config.json"
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "FlowMatchEulerDiscreteScheduler", with: "LCMScheduler")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(message { _ = try TextToImagePipeline.load(directory: tmp) }.contains("unknown scheduler class LCMScheduler"))
    }
}
