import Foundation

/// A text's token ids as a pipeline passes them to its text encoder.
public struct Encoding: Equatable, Sendable {
    public var ids: [Int]
    /// 1 for the text's tokens (special ones included), 0 for padding.
    public var attentionMask: [Int]
    /// Tokens the length limit cut off (diffusers warns of them).
    public var truncated: Int
}

/// A tokenizer folder that cannot be read, naming the file and what is wrong.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case missing(String)
    case invalid(file: String, reason: String)

    public var description: String {
        switch self {
        case let .missing(what): return "tokenizer: \(what)"
        case let .invalid(file, reason): return "tokenizer: \(file): \(reason)"
        }
    }
}

/// Text → ids as Hugging Face `tokenizers` computes them for one model family.
public protocol Tokenizer: Sendable {
    /// Ids of `text` with the special tokens the model adds (CLIP: start … end; T5: … `</s>`), no padding.
    func encode(_ text: String) -> [Int]
    /// Special tokens `encode` adds before and after the text.
    var prefixCount: Int { get }
    var suffixCount: Int { get }
    /// The id padding uses.
    var padID: Int { get }
    /// The length the folder declares (`model_max_length`), or the family's usual one.
    var defaultMaxLength: Int { get }
}

extension Tokenizer {
    /// As a pipeline calls it: `padding="max_length", max_length=maxLength, truncation=True` (the
    /// text's tokens cut so the special ones still fit), or unpadded with `pad` false.
    public func encode(_ text: String, maxLength: Int, pad: Bool = true) -> Encoding {
        var ids = encode(text)
        let room = max(0, maxLength - prefixCount - suffixCount), body = ids.count - prefixCount - suffixCount
        var truncated = 0
        if ids.count > maxLength && body > room {
            truncated = body - room
            ids = Array(ids.prefix(prefixCount + room)) + ids.suffix(suffixCount)
        }
        var mask = Array(repeating: 1, count: ids.count)
        if pad && ids.count < maxLength {
            mask += Array(repeating: 0, count: maxLength - ids.count)
            ids += Array(repeating: padID, count: maxLength - ids.count)
        }
        return Encoding(ids: ids, attentionMask: mask, truncated: truncated)
    }
}

/// Text cut around the added tokens, as `tokenizers`' added vocabulary does: tokens marked
/// `normalized` are matched in the normalised text, the others in the raw text first; leftmost
/// match first, the longest at a position.
struct AddedTokens: Sendable {
    let raw: Matcher, normalized: Matcher

    /// `tokens`: text → (id, matched after normalisation).
    init(_ tokens: [String: (id: Int, normalized: Bool)]) {
        raw = Matcher(tokens.filter { !$0.value.normalized }.mapValues(\.id))
        normalized = Matcher(tokens.filter { $0.value.normalized }.mapValues(\.id))
    }

    enum Segment: Equatable { case text(String), token(Int) }

    /// The segments of `text`, text ones normalised by `normalize`.
    func split(_ text: String, normalize: (String) -> String) -> [Segment] {
        raw.split(text).flatMap { segment -> [Segment] in
            guard case let .text(plain) = segment else { return [segment] }
            return normalized.split(normalize(plain))
        }
    }
}

/// Leftmost-longest matching of a set of token strings.
struct Matcher: Sendable {
    let tokens: [(text: [UInt8], id: Int)]

    init(_ tokens: [String: Int]) {
        self.tokens = tokens.filter { !$0.key.isEmpty }.map { (Array($0.key.utf8), $0.value) }
            .sorted { $0.text.count > $1.text.count }
    }

    func split(_ text: String) -> [AddedTokens.Segment] {
        guard !tokens.isEmpty else { return [.text(text)] }
        let bytes = Array(text.utf8)
        var out: [AddedTokens.Segment] = [], start = 0, i = 0
        while i < bytes.count {
            guard let hit = tokens.first(where: { t in
                i + t.text.count <= bytes.count && bytes[i..<(i + t.text.count)].elementsEqual(t.text)
            })
            else { i += 1; continue }
            if i > start { out.append(.text(String(decoding: bytes[start..<i], as: UTF8.self))) }
            out.append(.token(hit.id))
            i += hit.text.count
            start = i
        }
        if start < bytes.count { out.append(.text(String(decoding: bytes[start...], as: UTF8.self))) }
        return out
    }
}

/// A JSON file of a tokenizer folder as a dictionary.
func readJSON(_ path: String) throws -> Any {
    guard let data = FileManager.default.contents(atPath: path) else { throw TokenizerError.missing("no file \(path)") }
    do { return try JSONSerialization.jsonObject(with: data) } catch {
        throw TokenizerError.invalid(file: path, reason: "not JSON (\(error.localizedDescription))")
    }
}

/// tokenizer_config.json's `model_max_length` when it is a real limit (transformers writes 1e30 for none).
func declaredMaxLength(_ config: [String: Any], otherwise: Int) -> Int {
    guard let n = (config["model_max_length"] as? NSNumber)?.doubleValue, n >= 1, n <= 1_000_000 else {
        return otherwise
    }
    return Int(n)
}

/// The text of a special-token entry of tokenizer_config.json: a string or {"content": …}.
func tokenText(_ value: Any?) -> String? {
    if let s = value as? String { return s }
    return (value as? [String: Any])?["content"] as? String
}
