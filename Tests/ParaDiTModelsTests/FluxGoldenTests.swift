import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights
import Testing

@Suite("FluxTransformer2DModel equals diffusers")
struct FluxGoldenTests {
    @Test("forward matches diffusers: schnell (no guidance), dev (guidance embedding, bf16)",
          arguments: ["flux-schnell-b2-3x5", "flux-dev-b1-bf16"])
    func golden(name: String) throws {
        let dir = "\(fixtures)/\(name)"
        let model = try ModelLoader.loadFlux(directory: "\(dir)/model")
        let inputs = try FluxInputs(file: SafeTensorsFile(path: "\(dir)/inputs.safetensors"))
        let expected = try SafeTensorsFile(path: "\(dir)/output.safetensors").tensor("sample")
        let out = try model.forward(inputs)
        #expect(out.shape == expected.shape)
        let err = relativeL2(out, expected)
        print("FIXTURE \(name) \(err)")
        #expect(err <= 1e-4, "\(name): relative L2 error \(err)")
    }

    @Test("Flux-dev without guidance is refused")
    func missingGuidance() throws {
        let dir = "\(fixtures)/flux-dev-b1-bf16"
        let model = try ModelLoader.loadFlux(directory: "\(dir)/model")
        var inputs = try FluxInputs(file: SafeTensorsFile(path: "\(dir)/inputs.safetensors"))
        inputs.guidance = []
        #expect(throws: WeightsError.self) { try model.forward(inputs) }
    }
}
