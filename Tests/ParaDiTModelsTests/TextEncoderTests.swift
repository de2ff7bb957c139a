import Foundation
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// Rows of token ids from a fixture's int64 tensor.
func idRows(_ file: SafeTensorsFile, _ name: String) throws -> [[Int]] {
    let (values, shape) = (try file.values(name), file.entries[name]!.shape)
    return (0..<shape[0]).map { i in (0..<shape[1]).map { Int(values[i * shape[1] + $0]) } }
}

@Suite("Text encoders equal transformers (tools/make_text_fixtures.py)")
struct TextEncoderTests {
    func expect(_ out: Tensor, _ name: String, in fixture: String) throws {
        let expected = try SafeTensorsFile(path: "\(fixtures)/\(fixture)/output.safetensors").tensor(name)
        #expect(out.shape == expected.shape, "\(fixture) \(name)")
        let err = relativeL2(out, expected)
        #expect(err <= 1e-5, "\(fixture) \(name): relative L2 \(err)")
    }

    @Test("CLIPTextModel (legacy pooling at the largest id) and CLIPTextModelWithProjection (F16, first end token)")
    func clip() throws {
        for fixture in ["clip-text-b2", "clip-text-proj-b2-f16"] {
            let model = try CLIPTextModel(directory: "\(fixtures)/\(fixture)/model")
            let out = try model(ids: idRows(fixtureInputs(fixture), "input_ids"))
            try expect(out.lastHiddenState, "last_hidden_state", in: fixture)
            try expect(out.penultimate, "penultimate", in: fixture)
            if let embeds = out.textEmbeds { try expect(embeds, "text_embeds", in: fixture) } else { try expect(out.pooled, "pooler_output", in: fixture) }
        }
    }

    @Test("T5EncoderModel: 300 tokens with a padding mask; BF16 weights")
    func t5() throws {
        for fixture in ["t5-encoder-b2", "t5-encoder-b1-bf16"] {
            let model = try T5EncoderModel(directory: "\(fixtures)/\(fixture)/model")
            let inputs = try fixtureInputs(fixture)
            let mask = inputs.entries["attention_mask"] == nil ? nil : try idRows(inputs, "attention_mask")
            try expect(try model(ids: idRows(inputs, "input_ids"), mask: mask), "last_hidden_state", in: fixture)
        }
    }

    @Test("UMT5EncoderModel (Wan's): a relative bias per layer, 40 tokens with a padding mask")
    func umt5() throws {
        let model = try T5EncoderModel(directory: "\(fixtures)/umt5-encoder-b2/model")
        let inputs = try fixtureInputs("umt5-encoder-b2")
        try expect(try model(ids: idRows(inputs, "input_ids"), mask: idRows(inputs, "attention_mask")),
                   "last_hidden_state", in: "umt5-encoder-b2")
    }

    @Test("bad ids are one clear error")
    func badInput() throws {
        let model = try CLIPTextModel(directory: "\(fixtures)/clip-text-b2/model")
        #expect(throws: WeightsError.self) { try model(ids: [[1, 2], [3]]) }
        #expect(throws: WeightsError.self) { try model(ids: [[1, 100_000]]) }
        #expect(throws: WeightsError.self) { try model(ids: [Array(repeating: 1, count: 78)]) }
        let t5 = try T5EncoderModel(directory: "\(fixtures)/t5-encoder-b1-bf16/model")
        #expect(throws: WeightsError.self) { try t5(ids: [[1, 2]], mask: [[1]]) }
    }
}
