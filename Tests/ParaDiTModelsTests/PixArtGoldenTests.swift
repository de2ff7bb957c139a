import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights
import Testing

@Suite("PixArtTransformer2DModel equals diffusers")
struct PixArtGoldenTests {
    @Test("forward matches diffusers' output: α with size conditioning and caption mask, Σ with interpolation",
          arguments: ["pixart-alpha-b2-8x12", "pixart-alpha-b2-bf16", "pixart-sigma-b1-12x16"])
    func golden(name: String) throws {
        let dir = "\(fixtures)/\(name)"
        let model = try ModelLoader.loadPixArt(directory: "\(dir)/model")
        let inputs = try PixArtInputs(file: SafeTensorsFile(path: "\(dir)/inputs.safetensors"))
        let expected = try SafeTensorsFile(path: "\(dir)/output.safetensors").tensor("sample")
        let out = try model.forward(inputs)
        #expect(out.shape == expected.shape)
        let err = relativeL2(out, expected)
        #expect(err <= 1e-4, "\(name): relative L2 error \(err)")
    }

    @Test("size conditioning inputs are required when the config uses them")
    func missingSizeConditioning() throws {
        let dir = "\(fixtures)/pixart-alpha-b2-8x12"
        let model = try ModelLoader.loadPixArt(directory: "\(dir)/model")
        var inputs = try PixArtInputs(file: SafeTensorsFile(path: "\(dir)/inputs.safetensors"))
        inputs.resolution = []
        #expect(throws: WeightsError.self) { try model.forward(inputs) }
    }

    @Test("loading a DiT folder as PixArt names both classes")
    func wrongClass() {
        do {
            _ = try ModelLoader.loadPixArt(directory: "\(fixtures)/dit-b2/model")
            Issue.record("accepted a DiT folder")
        } catch {
            #expect("\(error)".contains("DiTTransformer2DModel") && "\(error)".contains("PixArtTransformer2DModel"))
        }
    }
}
