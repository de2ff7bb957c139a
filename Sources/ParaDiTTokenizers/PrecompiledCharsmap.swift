/// SentencePiece's precompiled normalisation rules (`nmt_nfkc` for T5): a darts-clone double-array
/// trie from UTF-8 sequences to offsets of NUL-terminated replacements. Applied as `tokenizers`'
/// `Precompiled` normalizer does: per grapheme cluster shorter than 6 bytes, the shortest rule
/// matching a prefix of the cluster replaces the whole cluster; otherwise per character.
struct PrecompiledCharsmap: Sendable {
    let units: [UInt32]
    let replacements: [UInt8]

    /// The blob: a little-endian UInt32 byte length of the trie, the trie's units, the replacements.
    init?(_ blob: [UInt8]) {
        guard blob.count >= 4 else { return nil }
        let size = Int(blob[0]) | Int(blob[1]) << 8 | Int(blob[2]) << 16 | Int(blob[3]) << 24
        guard size % 4 == 0, size >= 4, 4 + size <= blob.count else { return nil }
        units = stride(from: 4, to: 4 + size, by: 4).map { i in
            UInt32(blob[i]) | UInt32(blob[i + 1]) << 8 | UInt32(blob[i + 2]) << 16 | UInt32(blob[i + 3]) << 24
        }
        replacements = Array(blob[(4 + size)...])
    }

    /// The replacement of the shortest rule that is a prefix of `key`, if any.
    func transform(_ key: some Collection<UInt8>) -> [UInt8]? {
        func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
        var node = offset(units[0])
        for byte in key {
            node ^= Int(byte)
            guard node < units.count else { return nil }
            let unit = units[node]
            guard unit & ((1 << 31) | 0xFF) == UInt32(byte) else { return nil }
            node ^= offset(unit)
            if (unit >> 8) & 1 == 1 {
                guard node < units.count else { return nil }
                let start = Int(units[node] & ((1 << 31) - 1))
                guard start < replacements.count else { return nil }
                let end = replacements[start...].firstIndex(of: 0) ?? replacements.count
                return Array(replacements[start..<end])
            }
        }
        return nil
    }

    func normalize(_ text: String) -> String {
        var out: [UInt8] = []
        for cluster in text {
            let bytes = Array(String(cluster).utf8)
            if bytes.count < 6, let r = transform(bytes) {
                out += r
                continue
            }
            for s in String(cluster).unicodeScalars {
                let b = Array(String(s).utf8)
                out += transform(b) ?? b
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
