import Foundation

/// CLIP's tokenizer (`transformers.CLIPTokenizer`): NFC, whitespace runs to one space, lower case;
/// the text cut into contractions, letter runs, single digits and runs of other symbols; each piece
/// byte-level BPE-encoded with "</w>" ending words; `<|startoftext|>` … `<|endoftext|>` around.
/// Read from a diffusers `tokenizer/` folder: vocab.json, merges.txt, tokenizer_config.json.
public struct CLIPTokenizer: Tokenizer {
    let bpe: BytePairEncoding
    let added: AddedTokens
    let startID: Int, endID: Int
    public let padID: Int
    public let defaultMaxLength: Int
    public var prefixCount: Int { 1 }
    public var suffixCount: Int { 1 }

    public init(folder: String) throws {
        guard let vocabulary = try readJSON("\(folder)/vocab.json") as? [String: Int] else {
            throw TokenizerError.invalid(file: "\(folder)/vocab.json", reason: "not a token → id object")
        }
        guard let merges = try? String(contentsOfFile: "\(folder)/merges.txt", encoding: .utf8) else {
            throw TokenizerError.missing("no readable \(folder)/merges.txt")
        }
        let config = (try? readJSON("\(folder)/tokenizer_config.json")) as? [String: Any] ?? [:]
        func id(_ key: String, _ fallback: String) throws -> Int {
            let text = tokenText(config[key]) ?? fallback
            guard let id = vocabulary[text] else {
                throw TokenizerError.invalid(file: "\(folder)/tokenizer_config.json",
                                             reason: "\(key) \"\(text)\" is not in vocab.json")
            }
            return id
        }
        let lines = merges.split(separator: "\n", omittingEmptySubsequences: true).filter { !$0.hasPrefix("#version") }
        let unknown = try id("unk_token", "<|endoftext|>")
        bpe = BytePairEncoding(vocabulary: vocabulary, merges: lines, endOfWord: "</w>", unknownID: unknown)
        (startID, endID, padID) = (try id("bos_token", "<|startoftext|>"), try id("eos_token", "<|endoftext|>"),
                                   try id("pad_token", "<|endoftext|>"))
        var specials: [String: (id: Int, normalized: Bool)] = [:]
        for (key, value) in config["added_tokens_decoder"] as? [String: Any] ?? [:] {
            let normalized = (value as? [String: Any])?["normalized"] as? Bool ?? true
            if let text = tokenText(value), let id = Int(key) { specials[text] = (id, normalized) }
        }
        added = AddedTokens(specials)
        defaultMaxLength = declaredMaxLength(config, otherwise: 77)
    }

    public func encode(_ text: String) -> [Int] {
        var ids = [startID]
        for segment in added.split(text, normalize: clipNormalized) {
            switch segment {
            case let .token(id): ids.append(id)
            case let .text(normal):
                for piece in clipPieces(normal) {
                    let word = piece.utf8.map { byteLevelAlphabet[Int($0)] }.joined()
                    ids += bpe.encode(word: word)
                }
            }
        }
        return ids + [endID]
    }
}

/// NFC, every run of white space as one space, lower case (Unicode's full mapping).
func clipNormalized(_ text: String) -> String {
    var out = String.UnicodeScalarView(), inSpace = false
    for s in text.precomposedStringWithCanonicalMapping.unicodeScalars {
        if s.properties.isWhitespace {
            if !inSpace { out.append(" ") }
            inSpace = true
        } else {
            out.append(s)
            inSpace = false
        }
    }
    return lowercasedAsRust(String(out))
}

/// CLIP's split: `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`, white space dropped.
func clipPieces(_ text: String) -> [String] {
    let scalars = Array(text.unicodeScalars)
    var pieces: [String] = [], i = 0
    func kind(_ s: Unicode.Scalar) -> Int {
        if s.properties.isWhitespace { return 0 }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return 1
        case .decimalNumber, .letterNumber, .otherNumber: return 2
        default: return 3
        }
    }
    let contractions = ["s", "t", "re", "ve", "m", "ll", "d"].map { Array(("'" + $0).unicodeScalars) }
    while i < scalars.count {
        if scalars[i] == "'", let c = contractions.first(where: { c in
            i + c.count <= scalars.count && scalars[i..<(i + c.count)].elementsEqual(c)
        }) {
            pieces.append(String(String.UnicodeScalarView(c)))
            i += c.count
            continue
        }
        let k = kind(scalars[i])
        var j = i + 1
        if k == 1 || k == 3 { while j < scalars.count && kind(scalars[j]) == k { j += 1 } }
        if k != 0 { pieces.append(String(String.UnicodeScalarView(scalars[i..<j]))) }
        i = j
    }
    return pieces
}

/// Lower case as Rust's `str::to_lowercase`: Unicode's full mapping, with Σ as ς at a word's end.
func lowercasedAsRust(_ text: String) -> String {
    guard text.unicodeScalars.contains("Σ") else { return text.lowercased() }
    let scalars = Array(text.unicodeScalars)
    var out = ""
    for (i, s) in scalars.enumerated() {
        guard s == "Σ" else { out += String(s).lowercased(); continue }
        let cased = { (t: Unicode.Scalar) in t.properties.isCased },
            ignorable = { (t: Unicode.Scalar) in t.properties.isCaseIgnorable }
        let before = scalars[..<i].reversed().first { !ignorable($0) }.map(cased) ?? false
        let after = scalars[(i + 1)...].first { !ignorable($0) }.map(cased) ?? false
        out += before && !after ? "ς" : "σ"
    }
    return out
}
