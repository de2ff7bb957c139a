import ParaDiTWeights

/// Which global image tokens a rank holds, on a grid of frames × gridHeight × gridWidth patches
/// (row-major: token t is in frame t / (h·w), row t % (h·w) / w, column t % w; an image is one
/// frame).
///
/// Models compute positional embeddings and RoPE for exactly these tokens, so a sequence-parallel
/// rank never builds the whole sequence. The serial layout holds every token.
public struct TokenLayout: Sendable, Equatable {
    public var frames: Int
    public var gridHeight: Int
    public var gridWidth: Int
    /// The contiguous range of global tokens held here.
    public var tokens: Range<Int>
    /// The text tokens of a joint-attention model (SD3, Flux) held here: nil for all of them
    /// (serial, or text replicated on every rank), a range when the text is split with the image.
    public var text: Range<Int>?

    public init(frames: Int = 1, gridHeight: Int, gridWidth: Int, tokens: Range<Int>? = nil, text: Range<Int>? = nil) {
        (self.frames, self.gridHeight, self.gridWidth) = (frames, gridHeight, gridWidth)
        self.tokens = tokens ?? 0..<(frames * gridHeight * gridWidth)
        self.text = text
    }

    public var totalTokens: Int { frames * gridHeight * gridWidth }
    public var isWhole: Bool { tokens == 0..<totalTokens && text == nil }

    /// The same grid holding `tokens` and `text`.
    public func holding(_ tokens: Range<Int>, text: Range<Int>? = nil) -> TokenLayout {
        TokenLayout(frames: frames, gridHeight: gridHeight, gridWidth: gridWidth, tokens: tokens, text: text)
    }

    /// Frame, row and column of global token t.
    public func position(_ t: Int) -> (frame: Int, row: Int, column: Int) {
        let plane = gridHeight * gridWidth
        return (t / plane, t % plane / gridWidth, t % gridWidth)
    }
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
