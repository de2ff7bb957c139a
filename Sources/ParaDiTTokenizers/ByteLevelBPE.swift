/// GPT-2's byte-level alphabet: every byte as a printable character (printable ASCII and Latin-1
/// as themselves, the rest shifted past U+0100), so BPE works on text without spaces or controls.
let byteLevelAlphabet: [String] = {
    let kept = Array(33...126) + Array(161...172) + Array(174...255)
    var table = [String](repeating: "", count: 256), next = 256
    for b in 0..<256 {
        if kept.contains(b) {
            table[b] = String(UnicodeScalar(UInt8(b)))
        } else {
            table[b] = String(UnicodeScalar(UInt32(next))!)
            next += 1
        }
    }
    return table
}()

/// Byte-pair encoding with a word-end suffix (CLIP's "</w>"): a word starts as its characters (the
/// last one suffixed) and the adjacent pair of lowest merge rank is merged, leftmost first, until no
/// pair has a rank.
struct BytePairEncoding: Sendable {
    let vocabulary: [String: Int]
    let ranks: [String: Int]
    let endOfWord: String
    let unknownID: Int?

    /// `merges`: "left right" lines in rank order.
    init(vocabulary: [String: Int], merges: [Substring], endOfWord: String, unknownID: Int?) {
        self.vocabulary = vocabulary
        var ranks: [String: Int] = [:]
        for (rank, line) in merges.enumerated() where ranks[String(line)] == nil { ranks[String(line)] = rank }
        self.ranks = ranks
        (self.endOfWord, self.unknownID) = (endOfWord, unknownID)
    }

    /// The ids of one pre-tokenized word (already in the byte-level alphabet).
    func encode(word: String) -> [Int] {
        var symbols = word.unicodeScalars.map { String($0) }
        guard !symbols.isEmpty else { return [] }
        symbols[symbols.count - 1] += endOfWord
        while symbols.count > 1 {
            var best: (rank: Int, at: Int)?
            for i in 0..<(symbols.count - 1) {
                if let r = ranks[symbols[i] + " " + symbols[i + 1]], r < (best?.rank ?? Int.max) { best = (r, i) }
            }
            guard let best else { break }
            let (left, right) = (symbols[best.at], symbols[best.at + 1])
            var merged: [String] = [], i = 0
            while i < symbols.count {
                if i + 1 < symbols.count && symbols[i] == left && symbols[i + 1] == right {
                    merged.append(left + right)
                    i += 2
                } else {
                    merged.append(symbols[i])
                    i += 1
                }
            }
            symbols = merged
        }
        return symbols.compactMap { vocabulary[$0] ?? unknownID }
    }
}
