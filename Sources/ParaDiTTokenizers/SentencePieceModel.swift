import Foundation

/// What a tokenizer needs of a SentencePiece `spiece.model` (a `ModelProto` protocol buffer): the
/// pieces with their scores and types, the unknown piece's id and the precompiled normaliser.
struct SentencePieceModel {
    var pieces: [(piece: String, score: Double, type: Int)] = []
    var unknownID = 0
    var charsmap: [UInt8] = []

    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.missing("no file \(path)")
        }
        func bad(_ reason: String) -> TokenizerError { .invalid(file: path, reason: reason) }
        for field in try ProtoReader(Array(data)).fields() {
            switch (field.number, field.payload) {
            case let (1, .bytes(piece)):
                var entry = (piece: "", score: 0.0, type: 1)
                for f in try ProtoReader(piece).fields() {
                    switch (f.number, f.payload) {
                    case let (1, .bytes(text)): entry.piece = String(decoding: text, as: UTF8.self)
                    case let (2, .fixed32(bits)): entry.score = Double(Float(bitPattern: bits))
                    case let (3, .varint(type)): entry.type = Int(type)
                    default: break
                    }
                }
                if entry.type == 2 { unknownID = pieces.count }
                pieces.append(entry)
            case let (3, .bytes(spec)):
                for f in try ProtoReader(spec).fields() {
                    if case let (2, .bytes(map)) = (f.number, f.payload) { charsmap = map }
                }
            default: break
            }
        }
        guard !pieces.isEmpty else { throw bad("no pieces: not a SentencePiece model") }
    }
}

/// The wire format of protocol buffers, as far as `ModelProto` uses it.
struct ProtoReader {
    enum Payload { case varint(UInt64), fixed64(UInt64), bytes([UInt8]), fixed32(UInt32) }
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func fields() throws -> [(number: Int, payload: Payload)] {
        var out: [(Int, Payload)] = [], i = 0
        func varint() throws -> UInt64 {
            var value: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < bytes.count, shift < 64 else {
                    throw TokenizerError.invalid(file: "spiece.model", reason: "truncated varint")
                }
                let b = bytes[i]
                i += 1
                value |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return value }
                shift += 7
            }
        }
        func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, n <= bytes.count - i else {
                throw TokenizerError.invalid(file: "spiece.model", reason: "field past the end")
            }
            defer { i += n }
            return bytes[i..<(i + n)]
        }
        func little(_ s: ArraySlice<UInt8>) -> UInt64 { s.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        while i < bytes.count {
            let key = try varint(), number = Int(key >> 3)
            switch key & 7 {
            case 0: out.append((number, .varint(try varint())))
            case 1: out.append((number, .fixed64(little(try take(8)))))
            case 2:
                let n = try varint()
                guard n <= UInt64(bytes.count) else {
                    throw TokenizerError.invalid(file: "spiece.model", reason: "field past the end")
                }
                out.append((number, .bytes(Array(try take(Int(n))))))
            case 5: out.append((number, .fixed32(UInt32(little(try take(4))))))
            default:
                throw TokenizerError.invalid(file: "spiece.model",
                                             reason: "wire type \(key & 7) is not a protocol buffer's")
            }
        }
        return out
    }
}
