import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// The committed fixtures from tools/make_fixtures.py.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

func relativeL2(_ a: Tensor, _ b: Tensor) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<min(a.count, b.count) {
        let d = Double(a.data[i]) - Double(b.data[i])
        num += d * d
        den += Double(b.data[i]) * Double(b.data[i])
    }
    return (num / den).squareRoot()
}

func fixtureInputs(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(path: "\(fixtures)/\(name)/inputs.safetensors") }

@Suite("Every model class equals diffusers")
struct GoldenTests {
    static let cases = [
        // DiT: batch 2 with the null class; a latent larger than sample_size; BF16 and F16 weights.
        "dit-b2", "dit-b1-12x12", "dit-b2-bf16", "dit-b2-f16",
        // PixArt-α (size conditioning, caption mask, non-square), BF16; PixArt-Σ (interpolation ×2).
        "pixart-alpha-b2-8x12", "pixart-alpha-b2-bf16", "pixart-sigma-b1-12x16",
        // SD3 (cropped positions, odd text), SD3.5 (qk-norm, dual attention, BF16).
        "sd3-b2-8x12", "sd35-b1-bf16",
        // Flux schnell (no guidance), Flux dev (guidance embedding, BF16).
        "flux-schnell-b2-3x5", "flux-dev-b1-bf16",
        // Wan 2.1 T2V: 3 latent frames of a non-square 6×10 latent, 3 heads; 5 frames with BF16 weights.
        "wan-t2v-b2-3x6x10", "wan-t2v-b1-bf16",
    ]

    @Test("forward matches diffusers' output (relative L2 ≤ 1e-4)", arguments: cases)
    func golden(name: String) throws {
        let model = try ModelRegistry.load(directory: "\(fixtures)/\(name)/model")
        let expected = try SafeTensorsFile(path: "\(fixtures)/\(name)/output.safetensors").tensor("sample")
        let out = try model.forward(any: ModelRegistry.family(model.className).readInputs(fixtureInputs(name)))
        #expect(out.shape == expected.shape)
        let err = relativeL2(out, expected)
        #expect(err <= 1e-4, "\(name): relative L2 error \(err)")
    }

    @Test("typed loading refuses a folder of another class, naming both")
    func wrongClass() {
        do {
            _ = try ModelRegistry.load(directory: "\(fixtures)/dit-b2/model", as: PixArtTransformer2DModel.self)
            Issue.record("accepted a DiT folder")
        } catch {
            #expect("\(error)".contains("DiTTransformer2DModel") && "\(error)".contains("PixArtTransformer2DModel"))
        }
    }

    /// A copy of a fixture model folder whose config.json `edit` changes.
    func editedModel(_ name: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-model-\(UUID())").path
        try FileManager.default.copyItem(atPath: "\(fixtures)/\(name)/model", toPath: dir)
        let path = dir + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        return dir
    }

    @Test("a config whose block count the checkpoint does not hold is refused before any block is built")
    func blockCountMismatch() throws {
        let dir = try editedModel("dit-b2") { $0["num_layers"] = 1_000_000_000 }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: WeightsError.self) { try ModelRegistry.load(directory: dir) }
        do { _ = try ModelRegistry.load(directory: dir) } catch {
            #expect("\(error)".contains("describes 1000000000 blocks, but the checkpoint holds 2"), "\(error)")
        }
    }

    @Test("a weights file that is a FIFO is refused at once instead of waiting for a writer")
    func fifoWeights() throws {
        let dir = try editedModel("dit-b2") { _ in }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let weights = dir + "/diffusion_pytorch_model.safetensors"
        try FileManager.default.removeItem(atPath: weights)
        #expect(mkfifo(weights, 0o600) == 0)
        do {
            _ = try ModelRegistry.load(directory: dir)
            Issue.record("loaded a FIFO")
        } catch {
            #expect("\(error)".contains("not a regular file"), "\(error)")
        }
    }

    @Test("DiT refuses non-square and non-patch-multiple latents")
    func ditLatents() throws {
        let model = try ModelRegistry.load(directory: "\(fixtures)/dit-b2/model", as: DiTTransformer2DModel.self)
        var inputs = try DiTInputs(file: fixtureInputs("dit-b2"))
        #expect(throws: Never.self) { try model.problem(inputs) }
        for (h, w) in [(8, 12), (7, 7)] {
            inputs.hiddenStates = Tensor(zeros: [2, 4, h, w])
            #expect(throws: WeightsError.self) { try model.problem(inputs) }
        }
    }

    @Test("PixArt-α needs its size conditioning inputs")
    func pixartSizeConditioning() throws {
        let model = try ModelRegistry.load(directory: "\(fixtures)/pixart-alpha-b2-8x12/model", as: PixArtTransformer2DModel.self)
        var inputs = try PixArtInputs(file: fixtureInputs("pixart-alpha-b2-8x12"))
        inputs.resolution = []
        #expect(throws: WeightsError.self) { try model.forward(inputs) }
    }

    @Test("SD3 refuses a latent beyond pos_embed_max_size")
    func sd3TooLarge() throws {
        let model = try ModelRegistry.load(directory: "\(fixtures)/sd3-b2-8x12/model", as: SD3Transformer2DModel.self)
        var inputs = try SD3Inputs(file: fixtureInputs("sd3-b2-8x12"))
        inputs.hiddenStates = Tensor(zeros: [2, 4, 26, 8])
        #expect(throws: WeightsError.self) { try model.forward(inputs) }
    }

    @Test("Flux-dev refuses to run without guidance")
    func fluxGuidance() throws {
        let model = try ModelRegistry.load(directory: "\(fixtures)/flux-dev-b1-bf16/model", as: FluxTransformer2DModel.self)
        var inputs = try FluxInputs(file: fixtureInputs("flux-dev-b1-bf16"))
        inputs.guidance = []
        #expect(throws: WeightsError.self) { try model.forward(inputs) }
    }
}
