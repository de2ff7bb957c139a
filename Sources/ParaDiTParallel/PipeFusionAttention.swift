import ParaDiTModels
import ParaDiTTensor

/// PipeFusion's attention in one pipeline stage: every self-attention layer of the stage keeps a
/// K/V buffer of the whole sequence ([text; image] tokens). A patch's pass writes its fresh K/V
/// into its slice of the buffer and attends to the whole buffer, whose other slices hold what the
/// other patches left there: this step's for patches already through the stage, the previous
/// step's for the rest. A pass of the whole image refreshes every slice, so synchronous (warm-up)
/// steps equal serial. Needs no communication: stale K/V stay where they were computed.
public final class PipeFusionAttention: AttentionRuntime {
    /// Text tokens and image tokens of the whole sequence.
    let textTokens: Int, imageTokens: Int
    /// The tokens of the patch in flight: image and text ranges of the whole sequence.
    var image: Range<Int> = 0..<0, text: Range<Int> = 0..<0
    var layer = 0
    /// One buffer per attention layer: [batch, text + image tokens, 2·width] (K then V per token).
    var buffers: [Tensor] = []

    public init(textTokens: Int, imageTokens: Int) {
        (self.textTokens, self.imageTokens) = (textTokens, imageTokens)
    }

    /// Called before a patch's pass through the stage's blocks.
    public func begin(image: Range<Int>, text: Range<Int>) {
        (self.image, self.text, layer) = (image, text, 0)
    }

    /// Floats held in K/V buffers (reported as the stage's activation memory).
    public var bufferedFloats: Int { buffers.reduce(0) { $0 + $1.count } }

    public func attention(_ c: AttentionCall) throws {
        precondition(c.queryTokens == c.keyTokens && c.keyMask == nil, "PipeFusion attention is self-attention without a key mask")
        // Joint calls carry the patch's text tokens; image-only calls (SD3.5's second attention) do not.
        let local = c.textTokens ?? 0..<0, textHere = c.textTokens == nil ? 0..<0 : text
        let textTotal = c.textTokens == nil ? 0 : textTokens
        guard local.count == textHere.count, c.queryTokens == image.count + textHere.count else {
            throw ParallelError.unsupported("a patch pass of \(c.queryTokens) tokens (\(local.count) text), but the patch has \(image.count) image and \(textHere.count) text tokens")
        }
        let (b, width) = (c.batch, c.heads * c.headDim), total = textTotal + imageTokens
        if layer == buffers.count {
            // A layer's first pass is of the whole sequence (the first step is synchronous).
            guard image.count == imageTokens else { throw ParallelError.unsupported("PipeFusion's first step must be a synchronous pass of the whole image") }
            buffers.append(Tensor(uninitialized: [b, total, 2 * width]))
        }
        let keys = buffers[layer]
        layer += 1
        guard keys.shape == [b, total, 2 * width] else {
            throw ParallelError.unsupported("attention layer \(layer - 1) changed shape between patches: \(keys.shape) vs \([b, total, 2 * width])")
        }
        let imageRows = local.isEmpty ? 0..<c.queryTokens : local.lowerBound == 0 ? local.upperBound..<c.queryTokens : 0..<local.lowerBound
        for i in 0..<b {
            let base = keys.data + i * total * 2 * width
            for (rows, at) in [(local, textHere.lowerBound), (imageRows, textTotal + image.lowerBound)] where !rows.isEmpty {
                let src = i * c.queryTokens + rows.lowerBound, dst = base + at * 2 * width
                copy2D(rows: rows.count, cols: width, src: c.k + src * c.ldk, lds: c.ldk, dst: dst, ldd: 2 * width)
                copy2D(rows: rows.count, cols: width, src: c.v + src * c.ldv, lds: c.ldv, dst: dst + width, ldd: 2 * width)
            }
        }
        withExtendedLifetime(keys) {
            ParaDiTTensor.attention(batch: b, heads: c.heads, lq: c.queryTokens, lk: total, headDim: c.headDim,
                                    q: c.q, ldq: c.ldq, k: keys.data, ldk: 2 * width, v: keys.data + width, ldv: 2 * width,
                                    out: c.out, ldo: c.ldo, lse: nil, scale: c.scale)
        }
    }
}
