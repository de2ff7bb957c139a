import ParaDiTTensor

/// Every self- or joint-attention call of a model goes through an attention runtime: it is the
/// only place where sequence parallelism communicates. The serial runtime calls the fused kernel;
/// Ulysses, Ring, USP and the stale-K/V methods are other runtimes behind the same call.
///
/// q, k and v are this rank's tokens, token-major `[batch, tokens, heads, headDim]`, given as
/// strided views so that a fused QKV projection is read in place.
public protocol AttentionRuntime: AnyObject {
    /// out[b, i, h, :] = softmax(scale · q·kᵀ) · v over the whole (global) key sequence.
    /// Throws when communication with other ranks fails.
    func attention(_ call: AttentionCall) throws
}

/// One attention call's operands (see `AttentionRuntime`).
public struct AttentionCall {
    public var batch, heads, headDim: Int
    public var queryTokens, keyTokens: Int
    /// `batch`·queryTokens rows (q, out) and `batch`·keyTokens rows (k, v) of heads·headDim columns.
    public var q: StridedView, k: StridedView, v: StridedView
    public var out: StridedView
    public var scale: Float
    /// Additive key mask [batch, keyTokens] (−inf drops a key), if any.
    public var keyMask: Tensor?
    /// Where the text tokens of a joint attention lie among this rank's tokens (nil: image only).
    /// A sequence-parallel runtime counts them once whether they are split or replicated.
    public var textTokens: Range<Int>? = nil
    /// The products' precision (BF16 compute rounds the operands); sequence-parallel runtimes
    /// exchange q, k, v and the output in it, losing nothing the kernel would keep.
    public var precision: AttentionPrecision = .f32
}

/// Attention on one rank: the fused kernel, nothing to communicate.
public final class SerialAttention: AttentionRuntime {
    public init() {}

    public func attention(_ c: AttentionCall) {
        ParaDiTTensor.attention(batch: c.batch, heads: c.heads, headDim: c.headDim, q: c.q, k: c.k, v: c.v, out: c.out,
                                scale: c.scale, keyBias: c.keyMask, precision: c.precision)
    }
}
