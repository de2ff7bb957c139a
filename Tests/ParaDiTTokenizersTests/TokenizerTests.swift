import Foundation
import ParaDiTTokenizers
import Testing

let tokenizerFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

/// The fixture strings and, per string, what Hugging Face's tokenizer returned.
func expectations(_ file: String) throws -> (strings: [String], cases: [[String: Any]]) {
    let strings = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(tokenizerFixtures)/strings.json"))) as! [String]
    let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(tokenizerFixtures)/\(file)"))) as! [[String: Any]]
    return (strings, cases)
}

@Suite("Tokenizers: ids equal Hugging Face tokenizers on every fixture string")
struct TokenizerTests {
    /// Every string, bare and as the pipelines call it (padded and truncated to `length`).
    func conform(_ tokenizer: any Tokenizer, _ file: String, length: Int) throws {
        let (strings, cases) = try expectations(file)
        #expect(strings.count >= 1000 && cases.count == strings.count)
        var wrong = 0
        for (text, expected) in zip(strings, cases) {
            // transformers 5 (what diffusers loads) runs the `tokenizers` pipeline: the fast ids, where
            // the slow tokenizer of transformers 4 differed.
            let fast = expected["fast_ids"] != nil ? "fast_" : ""
            let bare = tokenizer.encode(text), padded = tokenizer.encode(text, maxLength: length)
            let ok = bare == expected[fast + "ids"] as? [Int] && padded.ids == expected[fast + "padded"] as? [Int]
                && padded.attentionMask == expected[fast + "mask"] as? [Int]
            if !ok {
                wrong += 1
                if wrong <= 5 { Issue.record("\(file) \(text.debugDescription.prefix(120)): got \(bare.prefix(40)), expected \(String(describing: expected[fast + "ids"]).prefix(300))") }
            }
        }
        #expect(wrong == 0, "\(wrong) of \(strings.count) strings differ")
    }

    @Test("CLIP byte-level BPE (the real CLIP merges), bare and padded to 77")
    func clip() throws {
        let tokenizer = try CLIPTokenizer(folder: "\(tokenizerFixtures)/clip")
        #expect(tokenizer.encode("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407])
        try conform(tokenizer, "clip-ids.json", length: 77)
    }

    @Test("T5 unigram from tokenizer.json, bare and padded to 120")
    func t5() throws {
        try conform(try T5Tokenizer(folder: "\(tokenizerFixtures)/t5"), "t5-ids.json", length: 120)
    }

    @Test("T5 unigram from spiece.model alone equals the same")
    func t5SentencePiece() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spm-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for file in ["spiece.model", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: "\(tokenizerFixtures)/t5/\(file)", toPath: "\(dir)/\(file)")
        }
        try conform(try T5Tokenizer(folder: dir), "t5-ids.json", length: 120)
    }

    @Test("a folder that is not a tokenizer is one clear error")
    func errors() throws {
        #expect(throws: TokenizerError.self) { try loadTokenizer(folder: "/nonexistent") }
        #expect(throws: TokenizerError.self) { try T5Tokenizer(folder: tokenizerFixtures) }
        #expect(try loadTokenizer(folder: "\(tokenizerFixtures)/clip") is CLIPTokenizer)
        #expect(try loadTokenizer(folder: "\(tokenizerFixtures)/t5") is T5Tokenizer)
    }
}
