import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights
import Testing

@Suite("SD3Transformer2DModel equals diffusers")
struct SD3GoldenTests {
    @Test("forward matches diffusers: SD3 (cropped position table, odd text), SD3.5 (qk-norm, dual attention, bf16)",
          arguments: ["sd3-b2-8x12", "sd35-b1-bf16"])
    func golden(name: String) throws {
        let dir = "\(fixtures)/\(name)"
        let model = try ModelLoader.loadSD3(directory: "\(dir)/model")
        let inputs = try SD3Inputs(file: SafeTensorsFile(path: "\(dir)/inputs.safetensors"))
        let expected = try SafeTensorsFile(path: "\(dir)/output.safetensors").tensor("sample")
        let out = try model.forward(inputs)
        #expect(out.shape == expected.shape)
        let err = relativeL2(out, expected)
        print("FIXTURE \(name) \(err)")
        #expect(err <= 1e-4, "\(name): relative L2 error \(err)")
    }

    @Test("a latent beyond pos_embed_max_size is refused")
    func tooLarge() throws {
        let dir = "\(fixtures)/sd3-b2-8x12"
        let model = try ModelLoader.loadSD3(directory: "\(dir)/model")
        var inputs = try SD3Inputs(file: SafeTensorsFile(path: "\(dir)/inputs.safetensors"))
        inputs.hiddenStates = Tensor(zeros: [2, 4, 26, 8])
        #expect(throws: WeightsError.self) { try model.forward(inputs) }
    }
}
