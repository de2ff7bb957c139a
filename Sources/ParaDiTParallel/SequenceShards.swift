import ParaDiTTensor

/// Which tokens each rank of a sequence-parallel group holds, by rank in that group
/// (ulysses fastest, then ring). Image tokens are always split; the text of a joint-attention
/// model (SD3, Flux) is split with them when its length divides evenly, and otherwise replicated
/// on every rank and counted once by the attention runtime.
public struct SequenceShards: Sendable, Equatable {
    public let image: [Range<Int>]
    public let textTokens: Int
    /// nil: the text is replicated on every rank.
    public let text: [Range<Int>]?

    /// `splitText: false` keeps the text replicated even when it divides (DistriFusion).
    public init(imageTokens: Int, textTokens: Int, degree: Int, splitText: Bool = true) {
        image = balancedSplit(imageTokens, parts: degree)
        self.textTokens = textTokens
        text = splitText && textTokens > 0 && textTokens % degree == 0 ? balancedSplit(textTokens, parts: degree) : nil
    }

    public var degree: Int { image.count }
    /// Tokens the attention exchanges carry (p in `CommVolume`): the image, and the text when split.
    public var exchangedTokens: Int { image.last!.upperBound + (text == nil ? 0 : textTokens) }
    public var textReplicated: Bool { text == nil && textTokens > 0 }

    /// Tokens of rank r's shard in an attention call: its image tokens, plus its text tokens when
    /// the call is joint and the text is split (replicated text is not part of any shard).
    public func shardTokens(_ r: Int, joint: Bool) -> Int {
        image[r].count + (joint ? text?[r].count ?? 0 : 0)
    }
}
