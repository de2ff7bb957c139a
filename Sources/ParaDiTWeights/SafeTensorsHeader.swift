import Foundation

// A strict JSON reader for the safetensors header. Foundation's JSONSerialization builds an object
// per value (a legal 99 MB header cost 6.7 GB); this one reads the bytes in place and keeps only the
// fields the engine uses, so memory stays proportional to the tensor count. It refuses what RFC 8259
// refuses (bad escapes, invalid UTF-8, control characters, trailing garbage) and nests at most 64 deep.

/// One tensor's fields as written in the header, before they are checked against the data section.
struct RawHeaderEntry {
    var dtype: String?
    var shape: [Int]?
    var dataOffsets: [Int]?
}

struct HeaderSyntaxError: Error {
    var reason: String
}

struct SafeTensorsHeaderReader {
    private let bytes: UnsafeRawBufferPointer
    private var at = 0
    private static let maxDepth = 64

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// The whole header: tensor entries in file order (a repeated name is the caller's to refuse)
    /// and the `__metadata__` map.
    static func read(_ bytes: UnsafeRawBufferPointer) throws
        -> (entries: [(String, RawHeaderEntry)], metadata: [String: String]) {
        var reader = SafeTensorsHeaderReader(bytes)
        var entries: [(String, RawHeaderEntry)] = []
        var metadata: [String: String]?
        try reader.object { reader, name in
            if name == "__metadata__" {
                guard metadata == nil else { throw HeaderSyntaxError(reason: "'__metadata__' appears twice") }
                var map: [String: String] = [:]
                try reader.object { reader, key in map[key] = try reader.string("__metadata__ values must be strings") }
                metadata = map
            } else {
                entries.append((name, try reader.entry(name)))
            }
        }
        reader.skipSpace()
        guard reader.at == bytes.count else { throw reader.error("bytes after the header's closing brace") }
        return (entries, metadata ?? [:])
    }

    private mutating func entry(_ name: String) throws -> RawHeaderEntry {
        var e = RawHeaderEntry()
        try object { reader, key in
            switch key {
            case "dtype": e.dtype = try reader.string("tensor '\(name)' dtype must be a string")
            case "shape": e.shape = try reader.integers("tensor '\(name)' shape")
            case "data_offsets": e.dataOffsets = try reader.integers("tensor '\(name)' data_offsets")
            default: try reader.skipValue(depth: 2)
            }
        }
        return e
    }

    // MARK: Grammar

    private func error(_ what: String) -> HeaderSyntaxError { HeaderSyntaxError(reason: "\(what) at byte \(at)") }

    private var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    private mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { at += 1 }
    }

    private mutating func consume(_ c: UInt8) -> Bool {
        skipSpace()
        guard peek == c else { return false }
        at += 1
        return true
    }

    private mutating func expect(_ c: UInt8) throws {
        guard consume(c) else { throw error("expected '\(Character(Unicode.Scalar(c)))'") }
    }

    /// `{ "key": value, … }`, calling `member` with the reader positioned at each value.
    private mutating func object(_ member: (inout SafeTensorsHeaderReader, String) throws -> Void) throws {
        try expect(UInt8(ascii: "{"))
        if consume(UInt8(ascii: "}")) { return }
        repeat {
            let key = try string("expected a string key")
            try expect(UInt8(ascii: ":"))
            try member(&self, key)
        } while consume(UInt8(ascii: ","))
        try expect(UInt8(ascii: "}"))
    }

    /// A list of exact non-negative integers below 2^53 (fractions, negatives and huge values refused).
    private mutating func integers(_ what: String) throws -> [Int] {
        try expect(UInt8(ascii: "["))
        var out: [Int] = []
        if consume(UInt8(ascii: "]")) { return out }
        repeat {
            skipSpace()
            if let n = plainInteger() {
                out.append(n)
                continue
            }
            let token = try number()
            guard let n = Self.exactInteger(token) else {
                throw error("\(what) holds \(token), not a non-negative integer")
            }
            out.append(n)
        } while consume(UInt8(ascii: ","))
        try expect(UInt8(ascii: "]"))
        return out
    }

    /// Up to 15 digits not followed by a fraction or exponent (the common case), else nil with
    /// the position unchanged.
    private mutating func plainInteger() -> Int? {
        var i = at, n = 0
        while i < bytes.count, i - at < 15, bytes[i] >= 0x30 && bytes[i] <= 0x39 {
            n = n * 10 + Int(bytes[i] - 0x30)
            i += 1
        }
        guard i > at, i == at + 1 || bytes[at] != 0x30 else { return nil }
        if i < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[i])
            || (0x30...0x39).contains(bytes[i]) { return nil }
        at = i
        return n
    }

    static func exactInteger(_ token: String) -> Int? {
        if let n = Int(token), n >= 0, n < 1 << 53 { return n }
        guard let d = Double(token), d >= 0, d < 9e15, d == d.rounded() else { return nil }
        return Int(d)
    }

    /// A JSON number token: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    private mutating func number() throws -> String {
        let start = at
        func digits(_ r: inout SafeTensorsHeaderReader) -> Int {
            let s = r.at
            while let c = r.peek, c >= 0x30 && c <= 0x39 { r.at += 1 }
            return r.at - s
        }
        if peek == UInt8(ascii: "-") { at += 1 }
        if peek == UInt8(ascii: "0") { at += 1 } else if digits(&self) == 0 { throw error("expected a number") }
        if peek == UInt8(ascii: ".") {
            at += 1
            guard digits(&self) > 0 else { throw error("expected digits after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            at += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
            guard digits(&self) > 0 else { throw error("expected exponent digits") }
        }
        guard at - start <= 400 else { throw error("a number of \(at - start) characters") }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
    }

    /// A JSON string, escapes decoded; invalid UTF-8, control characters and lone surrogates refused.
    private mutating func string(_ what: String) throws -> String {
        guard consume(UInt8(ascii: "\"")) else { throw error(what) }
        let start = at
        while let c = peek, c != UInt8(ascii: "\""), c != UInt8(ascii: "\\"), c >= 0x20 { at += 1 }
        if peek == UInt8(ascii: "\"") {  // no escapes: straight from the buffer
            guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self) else {
                throw error("a string that is not UTF-8")
            }
            at += 1
            return s
        }
        var utf8 = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<at]))
        while true {
            guard let c = peek else { throw error("unterminated string") }
            at += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validating: utf8, as: UTF8.self) else { throw error("a string that is not UTF-8") }
                return s
            case UInt8(ascii: "\\"): try escape(into: &utf8)
            case ..<0x20: throw error("a control character inside a string")
            default: utf8.append(c)
            }
        }
    }

    private mutating func escape(into utf8: inout [UInt8]) throws {
        guard let c = peek else { throw error("unterminated escape") }
        at += 1
        switch c {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(c); return
        case UInt8(ascii: "b"): utf8.append(0x08); return
        case UInt8(ascii: "f"): utf8.append(0x0C); return
        case UInt8(ascii: "n"): utf8.append(0x0A); return
        case UInt8(ascii: "r"): utf8.append(0x0D); return
        case UInt8(ascii: "t"): utf8.append(0x09); return
        case UInt8(ascii: "u"): break
        default: throw error("an invalid escape")
        }
        var scalar = try hex4()
        if (0xD800..<0xDC00).contains(scalar) {
            guard peek == UInt8(ascii: "\\"), at + 1 < bytes.count, bytes[at + 1] == UInt8(ascii: "u") else {
                throw error("a lone surrogate")
            }
            at += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw error("a lone surrogate") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let u = Unicode.Scalar(scalar) else { throw error("a lone surrogate") }
        utf8.append(contentsOf: Array(String(Character(u)).utf8))
    }

    private mutating func hex4() throws -> UInt32 {
        guard at + 4 <= bytes.count else { throw error("a short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[at]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw error("a bad \\u escape")
            }
            v = v << 4 | UInt32(d)
            at += 1
        }
        return v
    }

    /// Any JSON value, checked and discarded (fields the engine does not use).
    private mutating func skipValue(depth: Int) throws {
        guard depth <= Self.maxDepth else { throw error("values nested over \(Self.maxDepth) deep") }
        skipSpace()
        switch peek {
        case UInt8(ascii: "{"): try object { reader, _ in try reader.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            at += 1
            if consume(UInt8(ascii: "]")) { return }
            repeat { try skipValue(depth: depth + 1) } while consume(UInt8(ascii: ","))
            try expect(UInt8(ascii: "]"))
        case UInt8(ascii: "\""): _ = try string("expected a string")
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: _ = try number()
        }
    }

    private mutating func literal(_ word: String) throws {
        for c in word.utf8 {
            guard peek == c else { throw error("expected \(word)") }
            at += 1
        }
    }
}
