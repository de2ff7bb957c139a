import Foundation
import Testing
import ParaDiTServe

@Suite("Image request parsing")
struct ImageRequestTests {
    static let badBodies: [(String, String?)] = [
        (#"{"prompt": "a", "n": "two"}"#, "n"),
        (#"{"prompt": "a", "n": 11}"#, "n"),
        (#"{"prompt": "a", "n": 0}"#, "n"),
        (#"{"prompt": "a", "n": 1.5}"#, "n"),
        (#"{"prompt": "a", "n": true}"#, "n"),
        (#"{"prompt": 3}"#, "prompt"),
        (#"{"prompt": "a", "size": "512"}"#, "size"),
        (#"{"prompt": "a", "size": "0x512"}"#, "size"),
        (#"{"prompt": "a", "size": 512}"#, "size"),
        (#"{"prompt": "a", "response_format": "jpeg"}"#, "response_format"),
        (#"{"prompt": "a", "output_format": "webp"}"#, "output_format"),
        (#"{"prompt": "a", "num_inference_steps": 0}"#, "num_inference_steps"),
        (#"{"prompt": "a", "guidance_scale": -1}"#, "guidance_scale"),
        (#"{"prompt": "a", "guidance_scale": "high"}"#, "guidance_scale"),
        (#"{"prompt": "a", "seed": -1}"#, "seed"),
        (#"{"prompt": "a", "seed": 1e30}"#, "seed"),
        (#"{"prompt": "a", "class_label": "cat"}"#, "class_label"),
        (#"{"prompt": "a", "quality": "hd"}"#, "quality"),
        (#"{"prompt": "a", "num_steps": 4}"#, "num_steps"),
        (#"["a"]"#, nil),
        (#"{"prompt": "a""#, nil),
        ("", nil),
    ]

    @Test("a malformed field gets 400 naming it", arguments: badBodies)
    func badField(body: String, field: String?) {
        #expect {
            try ImageRequest(json: Data(body.utf8))
        } throws: { error in
            guard case let .badRequest(f, message)? = error as? ServeError else { return false }
            return f == field && !message.isEmpty && (error as! ServeError).status == 400
        }
    }

    @Test("OpenAI's fields and the extensions are read with their types")
    func fields() throws {
        let body = #"""
        {"prompt": "a fox", "n": 2, "size": "768x512", "model": "any", "response_format": "url", "user": "u",
         "negative_prompt": "blur", "num_inference_steps": 7, "guidance_scale": 3, "seed": 18446744073709551615,
         "class_label": 5, "output_format": "png"}
        """#
        let r = try ImageRequest(json: Data(body.utf8))
        #expect(r.prompt == "a fox" && r.n == 2 && r.model == "any" && r.responseFormat == .url)
        // OpenAI writes WIDTHxHEIGHT.
        #expect(r.width == 768 && r.height == 512)
        #expect(r.negativePrompt == "blur" && r.steps == 7 && r.guidanceScale == 3 && r.classLabel == 5)
        #expect(r.seed == UInt64.max)
        let auto = try ImageRequest(json: Data(#"{"prompt": "x", "size": "auto", "seed": null}"#.utf8))
        #expect(auto.width == nil && auto.height == nil && auto.seed == nil && auto.n == 1)
    }
}
