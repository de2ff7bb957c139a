import ParaDiTWeights

/// Which global image tokens a rank holds, on a patch grid of gridHeight × gridWidth
/// (token t is at row t / gridWidth, column t % gridWidth).
///
/// Models compute positional embeddings and RoPE for exactly these tokens, so a sequence-parallel
/// rank never builds the whole sequence. The serial layout holds every token.
public struct TokenLayout: Sendable, Equatable {
    public var gridHeight: Int
    public var gridWidth: Int
    /// The contiguous range of global tokens held here.
    public var tokens: Range<Int>
    /// The text tokens of a joint-attention model (SD3, Flux) held here: nil for all of them
    /// (serial, or text replicated on every rank), a range when the text is split with the image.
    public var text: Range<Int>?

    public init(gridHeight: Int, gridWidth: Int, tokens: Range<Int>? = nil, text: Range<Int>? = nil) {
        self.gridHeight = gridHeight
        self.gridWidth = gridWidth
        self.tokens = tokens ?? 0..<(gridHeight * gridWidth)
        self.text = text
    }

    public var totalTokens: Int { gridHeight * gridWidth }
    public var isWhole: Bool { tokens == 0..<totalTokens && text == nil }
}

extension TokenLayout {
    /// The whole-image layout of a latent [B, C, height, width] cut into patchSize² patches.
    public static func patches(latentHeight: Int, latentWidth: Int, patchSize p: Int) throws -> TokenLayout {
        guard latentHeight % p == 0, latentWidth % p == 0 else {
            throw WeightsError.badInput(name: "hidden_states", reason: "latent size \(latentHeight)×\(latentWidth) is not a multiple of patch_size \(p)")
        }
        return TokenLayout(gridHeight: latentHeight / p, gridWidth: latentWidth / p)
    }
}
