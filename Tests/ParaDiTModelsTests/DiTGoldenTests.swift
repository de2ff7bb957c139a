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

@Suite("DiTTransformer2DModel equals diffusers")
struct DiTGoldenTests {
    @Test("forward matches diffusers' output", arguments: ["dit-b2", "dit-b1-12x12", "dit-b2-bf16", "dit-b2-f16"])
    func golden(name: String) throws {
        let dir = "\(fixtures)/\(name)"
        let model = try ModelLoader.loadDiT(directory: "\(dir)/model")
        let inputs = try DiTInputs(file: SafeTensorsFile(path: "\(dir)/inputs.safetensors"))
        let expected = try SafeTensorsFile(path: "\(dir)/output.safetensors").tensor("sample")
        let out = try model.forward(inputs)
        #expect(out.shape == expected.shape)
        let err = relativeL2(out, expected)
        #expect(err <= 1e-4, "\(name): relative L2 error \(err)")
    }

    @Test("a non-square latent is refused with a message")
    func nonSquare() throws {
        let model = try ModelLoader.loadDiT(directory: "\(fixtures)/dit-b2/model")
        #expect(throws: WeightsError.self) { try model.layout(latentHeight: 8, latentWidth: 12) }
        #expect(throws: WeightsError.self) { try model.layout(latentHeight: 7, latentWidth: 7) }
    }
}
