import Foundation

/// T5's tokenizer (`transformers.T5TokenizerFast`, SentencePiece unigram): added tokens split off;
/// the precompiled `nmt_nfkc` normaliser; words split at white space, each prefixed with "▁";
/// Viterbi-segmented into pieces; `</s>` appended. Read from a diffusers `tokenizer_2/` or
/// `tokenizer_3/` folder: tokenizer.json when present (what transformers loads), else spiece.model.
public struct T5Tokenizer: Tokenizer {
    let model: UnigramModel
    let charsmap: PrecompiledCharsmap?
    let added: AddedTokens
    let prefix: [Int], suffix: [Int]
    /// Metaspace's replacement for a space, prefixed to every word.
    let space: String
    public let padID: Int
    public let defaultMaxLength: Int
    public var prefixCount: Int { prefix.count }
    public var suffixCount: Int { suffix.count }

    public init(folder: String) throws {
        let config = (try? readJSON("\(folder)/tokenizer_config.json")) as? [String: Any] ?? [:]
        let json = "\(folder)/tokenizer.json", spm = "\(folder)/spiece.model"
        var vocabulary: [(piece: String, score: Double)], unknownID: Int, blob: [UInt8],
            specials: [String: (id: Int, normalized: Bool)] = [:]
        if FileManager.default.fileExists(atPath: json) {
            guard let root = try readJSON(json) as? [String: Any], let m = root["model"] as? [String: Any] else {
                throw TokenizerError.invalid(file: json, reason: "no \"model\" object")
            }
            guard m["type"] as? String == "Unigram", let entries = m["vocab"] as? [[Any]] else {
                throw TokenizerError.invalid(file: json,
                                             reason: "model \(m["type"] ?? "?") is not a Unigram with a vocab")
            }
            vocabulary = entries.map { ($0.first as? String ?? "", ($0.last as? NSNumber)?.doubleValue ?? 0) }
            unknownID = m["unk_id"] as? Int ?? 0
            blob = try Self.charsmap(root["normalizer"], file: json)
            for case let t as [String: Any] in root["added_tokens"] as? [Any] ?? [] {
                if let text = t["content"] as? String, let id = t["id"] as? Int {
                    specials[text] = (id, t["normalized"] as? Bool ?? false)
                }
            }
            try Self.checkPreTokenizer(root["pre_tokenizer"], file: json)
        } else if FileManager.default.fileExists(atPath: spm) {
            // As transformers converts a bare spiece.model: its pieces, then the extra ids in reverse.
            let model = try SentencePieceModel(path: spm)
            let extra = config["extra_ids"] as? Int ?? 100
            vocabulary = model.pieces.map { ($0.piece, $0.score) }
                + (0..<extra).reversed().map { ("<extra_id_\($0)>", 0) }
            (unknownID, blob) = (model.unknownID, model.charsmap)
            for (id, p) in model.pieces.enumerated() where p.type == 2 || p.type == 3 {
                specials[p.piece] = (id, false)
            }
            for i in 0..<extra { specials["<extra_id_\(i)>"] = (vocabulary.count - 1 - i, false) }
        } else {
            throw TokenizerError.missing("\(folder) has neither tokenizer.json nor spiece.model")
        }
        model = UnigramModel(vocabulary: vocabulary, unknownID: unknownID)
        charsmap = blob.isEmpty ? nil : PrecompiledCharsmap(blob)
        if !blob.isEmpty && charsmap == nil {
            throw TokenizerError.invalid(file: folder, reason: "malformed precompiled charsmap")
        }
        added = AddedTokens(specials)
        space = "▁"
        let ids = Dictionary(vocabulary.enumerated().map { ($0.element.piece, $0.offset) },
                             uniquingKeysWith: { a, _ in a })
        let eos = tokenText(config["eos_token"]) ?? "</s>", pad = tokenText(config["pad_token"]) ?? "<pad>"
        guard let eosID = ids[eos], let padID = ids[pad] else {
            throw TokenizerError.invalid(file: "\(folder)/tokenizer_config.json",
                                         reason: "eos \"\(eos)\" or pad \"\(pad)\" is not in the vocabulary")
        }
        (prefix, suffix, self.padID) = ([], [eosID], padID)
        defaultMaxLength = declaredMaxLength(config, otherwise: 512)
    }

    /// The precompiled charsmap of a tokenizer.json normalizer (Precompiled, alone or in a Sequence
    /// with space clean-ups that white-space splitting makes moot).
    static func charsmap(_ normalizer: Any?, file: String) throws -> [UInt8] {
        guard let n = normalizer as? [String: Any] else { return [] }
        switch n["type"] as? String {
        case "Precompiled":
            guard let text = n["precompiled_charsmap"] as? String, let data = Data(base64Encoded: text) else {
                return []
            }
            return Array(data)
        case "Sequence":
            for part in n["normalizers"] as? [Any] ?? [] {
                let map = try charsmap(part, file: file)
                if !map.isEmpty { return map }
            }
            return []
        case "Replace", "Strip": return []
        case let other:
            throw TokenizerError.invalid(file: file,
                                         reason: "normalizer \(other ?? "?") is not one a T5 tokenizer uses")
        }
    }

    /// The white-space split and "▁" prefix every T5 tokenizer uses; anything else is refused.
    static func checkPreTokenizer(_ p: Any?, file: String) throws {
        guard let p = p as? [String: Any] else { return }
        let parts = p["type"] as? String == "Sequence" ? (p["pretokenizers"] as? [[String: Any]] ?? []) : [p]
        for part in parts {
            switch part["type"] as? String {
            case "WhitespaceSplit": break
            case "Metaspace":
                guard part["replacement"] as? String ?? "▁" == "▁",
                      (part["prepend_scheme"] as? String ?? "always") == "always" else {
                    throw TokenizerError.invalid(file: file, reason: "a Metaspace other than \"▁\" prepended always")
                }
            case let other:
                throw TokenizerError.invalid(file: file,
                                             reason: "pre-tokenizer \(other ?? "?") is not one a T5 tokenizer uses")
            }
        }
    }

    public func encode(_ text: String) -> [Int] {
        var ids = prefix
        for segment in added.split(text, normalize: { charsmap?.normalize($0) ?? $0 }) {
            switch segment {
            case let .token(id): ids.append(id)
            case let .text(normal):
                for word in normal.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace }) {
                    // Metaspace with split: "▁" inside a word starts a new piece.
                    var pieces: [String] = [], current = String(String.UnicodeScalarView(word))
                    if !current.hasPrefix(space) { current = space + current }
                    var start = current.startIndex
                    for i in current.indices.dropFirst() where current[i] == Character(space) {
                        pieces.append(String(current[start..<i]))
                        start = i
                    }
                    pieces.append(String(current[start...]))
                    for piece in pieces { ids += model.encode(word: piece) }
                }
            }
        }
        return ids + suffix
    }
}
