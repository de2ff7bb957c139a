import Foundation
import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// The committed fixtures of tools/make_prompt_pipelines.py: tiny pipelines with their tokenizers
/// and text encoders, run by diffusers from a text prompt.
let promptFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/prompt-pipelines").path

struct PromptCase {
    let folder: String
    let prompt: TextPrompt
    let request: GenerationRequest
    let expected: SafeTensorsFile, conditioning: SafeTensorsFile

    init(_ name: String) throws {
        let dir = "\(promptFixtures)/\(name)"
        let args = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/args.json"))) as! [String: Any]
        folder = "\(dir)/pipeline"
        prompt = TextPrompt(prompts: [args["prompt"] as! String], negativePrompt: args["negative_prompt"] as? String)
        request = GenerationRequest(seed: UInt64(args["seed"] as! Int), steps: args["steps"] as! Int,
                                    guidanceScale: (args["guidance_scale"] as! NSNumber).doubleValue,
                                    height: args["height"] as? Int, width: args["width"] as? Int)
        expected = try SafeTensorsFile(path: "\(dir)/expected.safetensors")
        conditioning = try SafeTensorsFile(path: "\(dir)/conditioning.safetensors")
    }

    func encode() throws -> Conditioning {
        try TextToImagePipeline.encodePrompt(folder: PipelineFolder(directory: folder), prompt, guidance: request.guidanceScale).conditioning
    }
}

@Suite("Prompts to images equal diffusers (tokenizers, text encoders, encode_prompt, denoising)")
struct PromptPipelineTests {
    static let cases = ["pixart-sigma", "sd3", "flux"]

    @Test("encode_prompt: every embedding within 1e-5 and the masks exact", arguments: cases)
    func encodes(name: String) throws {
        let c = try PromptCase(name)
        let got = try c.encode()
        let named: [(String, Tensor?)] = [
            ("prompt_embeds", got.promptEmbeds), ("negative_prompt_embeds", got.negativePromptEmbeds),
            ("pooled_prompt_embeds", got.pooledPromptEmbeds), ("negative_pooled_prompt_embeds", got.negativePooledPromptEmbeds),
            ("prompt_attention_mask", got.promptAttentionMask), ("negative_prompt_attention_mask", got.negativePromptAttentionMask),
        ]
        for (key, tensor) in named {
            let present = c.conditioning.entries[key] != nil
            #expect(present == (tensor != nil), "\(name): \(key) present in diffusers' \(present), ours \(tensor != nil)")
            guard present, let tensor else { continue }
            let want = Tensor(shape: c.conditioning.entries[key]!.shape, values: try c.conditioning.values(key).map(Float.init))
            #expect(tensor.shape == want.shape, "\(name) \(key)")
            if key.hasSuffix("mask") { #expect(tensor.scalars == want.scalars, "\(name) \(key)") } else {
                let err = relL2(tensor, want)
                #expect(err <= 1e-5, "\(name) \(key): relative L2 \(err)")
            }
        }
    }

    @Test("--prompt end to end: latents (relative L2 ≤ 1e-4) and 8-bit image (±1) equal diffusers'", arguments: cases)
    func endToEnd(name: String) throws {
        let c = try PromptCase(name)
        let conditioning = try c.encode()
        let pipeline = try TextToImagePipeline.load(directory: c.folder)
        let latents = try pipeline.denoise(c.request, conditioning: conditioning, denoiser: { try pipeline.transformer.forward(any: $0) })
        let err = relL2(latents, try c.expected.tensor("latents"))
        #expect(err <= 1e-4, "\(name): latents relative L2 \(err)")
        let images = try VaeImageProcessor.postprocess(try pipeline.decode(latents, request: c.request, conditioning: conditioning))
        let reference = try c.expected.tensor("image")
        let pixels = images.flatMap(\.pixels)
        #expect(pixels.count == reference.count)
        let off = zip(pixels, reference.scalars).filter { abs(Double($0.0) - Double(($0.1 * 255).rounded())) > 1 }.count
        #expect(off == 0, "\(name): \(off) of \(pixels.count) pixels differ by more than 1/255")
    }

    @Test("Wan's encode_prompt: prompt_clean, UMT5 with the mask, zeros past the tokens (within 1e-5)")
    func wanEncodes() throws {
        let dir = "\(promptFixtures)/wan"
        let args = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/args.json"))) as! [String: Any]
        let prompt = TextPrompt(prompts: [args["prompt"] as! String],
                                negativePrompt: args["negative_prompt"] as? String,
                                maxSequenceLength: args["max_sequence_length"] as? Int)
        let got = try TextToImagePipeline.encodePrompt(folder: PipelineFolder(directory: "\(dir)/pipeline"), prompt,
                                                       guidance: 5).conditioning
        let want = try SafeTensorsFile(path: "\(dir)/conditioning.safetensors")
        for (key, tensor) in [("prompt_embeds", got.promptEmbeds),
                              ("negative_prompt_embeds", got.negativePromptEmbeds!)] {
            let err = relL2(tensor, try want.tensor(key))
            #expect(tensor.shape == (try want.tensor(key)).shape && err <= 1e-5, "\(key): relative L2 \(err)")
        }
        #expect(promptClean("  a  &amp;amp; b\n\t&#233;&#x41; &bogus; ") == "a & b éA &bogus;")
    }

    @Test("AutoencoderKLWan decodes diffusers' latents to its video (rel. L2 ≤ 1e-4) frame by frame, causal cache")
    func wanDecodes() throws {
        let dir = "\(promptFixtures)/wan"
        let vae = try AutoencoderKLWan.load(directory: "\(dir)/pipeline/vae")
        let expected = try SafeTensorsFile(path: "\(dir)/expected.safetensors")
        let video = try vae.decode(latents: expected.tensor("latents"))
        let want = try expected.tensor("video")
        #expect(video.shape == want.shape)
        let err = relL2(video, want)
        #expect(err <= 1e-4, "video relative L2 \(err)")
        // 8-bit frames against diffusers' postprocess_video [B, F, 3, H, W] in [0, 1].
        let frames = try VideoOutput.frames(video)[0], reference = try expected.tensor("frames")
        let (f, h, w) = (reference.size(1), reference.size(3), reference.size(4))
        var off = 0
        for (i, frame) in frames.enumerated() { for c in 0..<3 { for p in 0..<(h * w) {
            let want = Double(reference.scalars[((i * 3 + c) * h * w) + p]) * 255
            if abs(Double(frame.pixels[p * 3 + c]) - want.rounded()) > 1 { off += 1 }
        } } }
        #expect(frames.count == f && off == 0, "\(off) subpixels off by more than 1/255")
    }

    @Test("a folder without text encoders, a class-conditional pipeline, an empty prompt list: one clear error")
    func errors() throws {
        let plain = try PipelineFolder(directory: "\(pipelineFixtures)/sd3/pipeline")
        let missing = "\(try #require(throws: WeightsError.self) { try TextToImagePipeline.encodePrompt(folder: plain, TextPrompt(prompts: ["a cat"]), guidance: 5) })"
        #expect(missing.contains("text_encoder/") && missing.contains("--prompt-embeds"), "\(missing)")
        let dit = try PipelineFolder(directory: "\(pipelineFixtures)/dit/pipeline")
        #expect(throws: WeightsError.self) { try TextToImagePipeline.encodePrompt(folder: dit, TextPrompt(prompts: ["a cat"]), guidance: 4) }
        let sd3 = try PipelineFolder(directory: "\(promptFixtures)/sd3/pipeline")
        #expect(throws: WeightsError.self) { try TextToImagePipeline.encodePrompt(folder: sd3, TextPrompt(prompts: []), guidance: 4) }
    }
}
