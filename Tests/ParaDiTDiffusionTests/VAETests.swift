import Foundation
import ParaDiTDiffusion
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// The committed fixtures from tools/make_vae_fixtures.py.
private let vaeFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/vae").path

private func vaeData(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(path: "\(vaeFixtures)/\(name)/data.safetensors") }

private func relativeL2(_ a: Tensor, _ b: Tensor) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<min(a.count, b.count) {
        let d = Double(a.data[i]) - Double(b.data[i])
        num += d * d
        den += Double(b.data[i]) * Double(b.data[i])
    }
    return (num / den).squareRoot()
}

/// A copy of a fixture's VAE folder in a fresh temporary directory, its tensors (widened to F32)
/// passed through `edit` and its config.json through `editConfig`.
private func editedVAE(_ name: String, editConfig: (inout [String: Any]) -> Void = { _ in },
               _ edit: (inout [String: Tensor]) -> Void) throws -> String {
    let source = "\(vaeFixtures)/\(name)/vae"
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-vae-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let file = try SafeTensorsFile(path: "\(source)/diffusion_pytorch_model.safetensors")
    var tensors: [String: Tensor] = [:]
    for key in file.names { tensors[key] = try file.tensor(key) }
    edit(&tensors)
    try writeSafeTensors(tensors.mapValues { .float($0) }, to: "\(folder)/diffusion_pytorch_model.safetensors")
    let configData = try Data(contentsOf: URL(fileURLWithPath: "\(source)/config.json"))
    var config = try JSONSerialization.jsonObject(with: configData) as! [String: Any]
    editConfig(&config)
    try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: "\(folder)/config.json"))
    return folder
}

@Suite("AutoencoderKL decoder equals diffusers")
struct VAETests {
    /// SD/PixArt-like (4 channels, post_quant_conv, batch 2) and SD3/Flux-like (16 channels, shift, BF16 weights).
    static let cases = ["sd-b2-6x8", "flux-b1-5x7"]

    @Test("decode(latents:) matches diffusers' vae.decode (relative L2 ≤ 1e-5) and its 8-bit image", arguments: cases)
    func golden(name: String) throws {
        let vae = try AutoencoderKL.load(directory: "\(vaeFixtures)/\(name)/vae")
        let data = try vaeData(name)
        let expected = try data.tensor("image")
        let image = try vae.decode(latents: data.tensor("latents"))
        #expect(image.shape == expected.shape)
        let err = relativeL2(image, expected)
        #expect(err <= 1e-5, "\(name): relative L2 error \(err)")

        // Per pixel, the largest difference over its three channels.
        let reference = try data.values("pixels").map { Int($0) }
        let ours = try VaeImageProcessor.postprocess(image).flatMap(\.pixels).map { Int($0) }
        try #require(ours.count == reference.count)
        let pixelDiffs = stride(from: 0, to: ours.count, by: 3).map { p in (p..<(p + 3)).map { abs(ours[$0] - reference[$0]) }.max()! }
        let (off, far) = (pixelDiffs.filter { $0 == 1 }.count, pixelDiffs.filter { $0 > 1 }.count)
        #expect(Double(far) <= 0.001 * Double(pixelDiffs.count), "\(name): \(far) of \(pixelDiffs.count) pixels differ by more than 1")
        print("\(name): relative L2 \(err); 8-bit pixels differing: \(off) by 1, \(far) by more, of \(pixelDiffs.count)")
    }

    @Test("unscaling is bit-exact with the pipelines' latents / sf (+ shift) and DiT's 1 / sf * latents", arguments: cases)
    func unscale(name: String) throws {
        let vae = try AutoencoderKL.load(directory: "\(vaeFixtures)/\(name)/vae")
        let data = try vaeData(name)
        let latents = try data.tensor("latents")
        #expect(try vae.unscale(latents, scaling: .divide).scalars == data.tensor("z").scalars)
        #expect(try vae.unscale(latents, scaling: .reciprocal).scalars == data.tensor("z_reciprocal").scalars)
    }

    @Test("8-bit conversion of diffusers' own float image equals its image processor exactly", arguments: cases)
    func imageProcessor(name: String) throws {
        let data = try vaeData(name)
        let pixels = try VaeImageProcessor.postprocess(data.tensor("image")).flatMap(\.pixels)
        #expect(pixels.map { Double($0) } == (try data.values("pixels")))
    }

    @Test("checkpoints with the pre-0.14 attention names (query, key, value, proj_attn) decode the same")
    func legacyAttentionNames() throws {
        let renames = ["to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"]
        let folder = try editedVAE("sd-b2-6x8") { tensors in
            for key in Array(tensors.keys) where key.contains(".attentions.0.") {
                for (new, old) in renames where key.contains(".\(new).") {
                    tensors[key.replacingOccurrences(of: ".\(new).", with: ".\(old).")] = tensors.removeValue(forKey: key)
                }
            }
        }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let latents = try vaeData("sd-b2-6x8").tensor("latents")
        let legacy = try AutoencoderKL.load(directory: folder).decode(latents: latents)
        let current = try AutoencoderKL.load(directory: "\(vaeFixtures)/sd-b2-6x8/vae").decode(latents: latents)
        #expect(legacy.scalars == current.scalars)
    }

    @Test("a missing decoder tensor is an error naming its key")
    func missingTensor() throws {
        let key = "decoder.mid_block.attentions.0.to_k.bias"
        let folder = try editedVAE("sd-b2-6x8") { $0[key] = nil }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(throws: WeightsError.missingTensor(key: key, file: folder)) { try AutoencoderKL.load(directory: folder) }
    }

    @Test("encoder and quant_conv tensors are left unread, any other extra tensor is an error naming it")
    func extraTensors() throws {
        let folder = try editedVAE("sd-b2-6x8") { $0["decoder.extra.weight"] = Tensor(shape: [2], repeating: 1) }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(throws: WeightsError.unusedTensors(keys: ["decoder.extra.weight"], file: folder)) {
            try AutoencoderKL.load(directory: folder)
        }
    }

    @Test("without mid-block attention the attention tensors are not expected, and are refused if present")
    func noMidBlockAttention() throws {
        let off: (inout [String: Any]) -> Void = { $0["mid_block_add_attention"] = false }
        let withTensors = try editedVAE("sd-b2-6x8", editConfig: off) { _ in }
        let without = try editedVAE("sd-b2-6x8", editConfig: off) { tensors in
            for key in Array(tensors.keys) where key.hasPrefix("decoder.mid_block.attentions.") { tensors[key] = nil }
        }
        defer { for f in [withTensors, without] { try? FileManager.default.removeItem(atPath: f) } }
        let vae = try AutoencoderKL.load(directory: without)
        #expect(try vae.decode(latents: vaeData("sd-b2-6x8").tensor("latents")).shape == [2, 3, 12, 16])
        #expect(throws: WeightsError.self) { try AutoencoderKL.load(directory: withTensors) }
    }

    @Test("latents with the wrong channel count are refused, naming both counts")
    func channelMismatch() throws {
        let vae = try AutoencoderKL.load(directory: "\(vaeFixtures)/flux-b1-5x7/vae")
        do {
            _ = try vae.decode(latents: Tensor(zeros: [1, 4, 5, 7]))
            Issue.record("accepted 4-channel latents for a 16-channel VAE")
        } catch {
            #expect("\(error)".contains("4 channels") && "\(error)".contains("16"), "\(error)")
        }
        #expect(throws: WeightsError.self) { try vae.decode(latents: Tensor(zeros: [16, 5, 7])) }
    }

    @Test("configs the decoder cannot build are refused before any weight is read")
    func badConfigs() throws {
        let edits: [(inout [String: Any]) -> Void] = [
            { $0["_class_name"] = "AutoencoderTiny" },
            { $0["norm_num_groups"] = 3 },
            { $0["up_block_types"] = ["UpDecoderBlock2D"] },
            { $0["act_fn"] = "gelu" },
        ]
        for edit in edits {
            let folder = try editedVAE("sd-b2-6x8", editConfig: edit) { _ in }
            defer { try? FileManager.default.removeItem(atPath: folder) }
            #expect(throws: WeightsError.self) { try AutoencoderKL.load(directory: folder) }
        }
    }

    @Test("the 8-bit conversion clamps, rounds half to even and interleaves RGB")
    func eightBit() throws {
        // One 1×3 image: R = [−2, 0, 0.25], G = [1, 2, 0.5], B = [−1, 1/255·2 − 1, −inf].
        let values: [Float] = [-2, 0, 0.25, 1, 2, 0.5, -1, 2 / 255 - 1, -.infinity]
        let image = try VaeImageProcessor.postprocess(Tensor(shape: [1, 3, 1, 3], values: values))[0]
        #expect(image.width == 3 && image.height == 1)
        #expect(image.pixels == [0, 255, 0, 128, 255, 1, 159, 191, 0])
        #expect(throws: WeightsError.self) { try VaeImageProcessor.postprocess(Tensor(zeros: [1, 4, 2, 2])) }
        // NaN has no colour: it was a silent black pixel, now it is refused naming the VAE.
        let nan = Tensor(shape: [1, 3, 1, 3], values: values.enumerated().map { $0.offset == 4 ? .nan : $0.element })
        #expect { try VaeImageProcessor.postprocess(nan) } throws: { "\($0)".contains("NaN") && "\($0)".contains("VAE") }
    }
}
