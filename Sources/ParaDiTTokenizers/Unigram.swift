/// A unigram language model's segmentation (SentencePiece, `tokenizers.models.Unigram`): of all
/// ways to cut a word into vocabulary pieces, the one with the largest sum of piece scores
/// (Viterbi). A character no piece starts with becomes the unknown piece, scored 10 below the
/// lowest score; adjacent unknowns fuse into one.
struct UnigramModel: Sendable {
    let pieces: [String: (id: Int, score: Double)]
    let unknownID: Int
    let unknownScore: Double
    let longest: Int

    init(vocabulary: [(piece: String, score: Double)], unknownID: Int) {
        var pieces: [String: (Int, Double)] = [:]
        for (id, entry) in vocabulary.enumerated() where pieces[entry.piece] == nil {
            pieces[entry.piece] = (id, entry.score)
        }
        self.pieces = pieces
        self.unknownID = unknownID
        unknownScore = (vocabulary.map(\.score).min() ?? 0) - 10
        longest = vocabulary.map { $0.piece.unicodeScalars.count }.max() ?? 1
    }

    func encode(word: String) -> [Int] {
        let chars = Array(word.unicodeScalars), n = chars.count
        guard n > 0 else { return [] }
        // best[i]: the best score of chars[..<i] and the last piece (start, id) reaching it.
        var best = [(score: Double, start: Int, id: Int)?](repeating: nil, count: n + 1)
        best[0] = (0, 0, -1)
        for start in 0..<n {
            guard let here = best[start] else { continue }
            var single = false
            var key = String.UnicodeScalarView()
            for end in (start + 1)...min(n, start + longest) {
                key.append(chars[end - 1])
                guard let piece = pieces[String(key)] else { continue }
                if end == start + 1 { single = true }
                let score = here.score + piece.score
                if best[end] == nil || score > best[end]!.score { best[end] = (score, start, piece.id) }
            }
            if !single {
                let score = here.score + unknownScore
                if best[start + 1] == nil || score > best[start + 1]!.score {
                    best[start + 1] = (score, start, unknownID)
                }
            }
        }
        var ids: [Int] = [], at = n
        while at > 0, let step = best[at] {
            if !(step.id == unknownID && ids.last == unknownID) { ids.append(step.id) }
            at = step.start
        }
        return ids.reversed()
    }
}
