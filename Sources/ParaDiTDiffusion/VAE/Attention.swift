import ParaDiTTensor
import ParaDiTWeights

/// The mid block's self-attention: diffusers `Attention` as built for the VAE (one head of width
/// C over the H·W pixels, GroupNorm first, residual connection, output scale 1):
///   t = GroupNorm(x) as tokens [H·W, C];  out = x + to_out(softmax(q·kᵀ/√C)·v),  q, k, v = to_q/k/v(t).
/// Checkpoints saved before diffusers renamed the block keep `query`/`key`/`value`/`proj_attn`;
/// diffusers renames those at load, and so does this.
///
/// No transposes: q|k|v come from one GEMM reading the channel-major norm output transposed,
/// and to_out writes channel-major straight onto the residual. The three stages (projections,
/// attention, output) are separate so the patch-parallel decoder can gather K and V between them.
package struct Attention {
    package let groupNorm: GroupNorm
    /// to_q, to_k, to_v stacked: [3C, C] and [3C].
    let qkvWeight: Tensor, qkvBias: Tensor
    let outWeight: Tensor, outBias: Tensor
    package let channels: Int

    init(_ w: Weights, channels c: Int, groups: Int, eps: Float) throws {
        channels = c
        groupNorm = try GroupNorm(w.scope("group_norm"), channels: c, groups: groups, eps: eps)
        let legacy = w.contains("query.weight")
        let names = legacy ? ["query", "key", "value", "proj_attn"] : ["to_q", "to_k", "to_v", "to_out.0"]
        qkvWeight = Tensor(uninitialized: [3 * c, c])
        qkvBias = Tensor(uninitialized: [3 * c])
        for (i, name) in names.prefix(3).enumerated() {
            qkvWeight.rows(i * c..<(i + 1) * c).copy(from: try w.tensor("\(name).weight", shape: [c, c]))
            qkvBias.rows(i * c..<(i + 1) * c).copy(from: try w.tensor("\(name).bias", shape: [c]))
        }
        outWeight = try w.tensor("\(names[3]).weight", shape: [c, c])
        outBias = try w.tensor("\(names[3]).bias", shape: [c])
    }

    /// x: [B, C, H, W] → [B, C, H, W].
    func callAsFunction(_ x: Tensor) -> Tensor {
        let (batch, c, n) = (x.size(0), channels, x.size(2) * x.size(3))
        let qkv = projections(groupNorm(x))
        let attended = Tensor(uninitialized: [batch, n, c])
        withExtendedLifetime(qkv) {
            attention(batch: batch, heads: 1, lq: n, lk: n, headDim: c, q: qkv.data, ldq: 3 * c,
                      k: qkv.data + c, ldk: 3 * c, v: qkv.data + 2 * c, ldv: 3 * c,
                      out: attended.data, ldo: c, lse: nil, scale: scale)
        }
        return output(attended, residual: x)
    }

    /// softmax's scale 1/√C.
    package var scale: Float { 1 / Float(channels).squareRoot() }

    /// normed: [B, C, H, W] → token-major q|k|v [B, H·W, 3C].
    package func projections(_ normed: Tensor) -> Tensor {
        let (batch, c, n) = (normed.size(0), channels, normed.size(2) * normed.size(3))
        let qkv = Tensor(uninitialized: [batch, n, 3 * c])
        withExtendedLifetime((normed, self)) {
            for b in 0..<batch {
                // qkv[n, 3C] = normedᵀ · Wᵀ + bias, normed being [C, n]: bias rows first, then accumulate.
                let rows = qkv.data + b * n * 3 * c
                copy2D(rows: n, cols: 3 * c, src: qkvBias.data, lds: 0, dst: rows, ldd: 3 * c)
                sgemm(transA: true, transB: true, m: n, n: 3 * c, k: c, alpha: 1, a: normed.data + b * c * n, lda: n,
                      b: qkvWeight.data, ldb: c, beta: 1, c: rows, ldc: 3 * c)
            }
        }
        return qkv
    }

    /// x + to_out(attended): attended [B, H·W, C] token-major, x [B, C, H, W] → [B, C, H, W].
    package func output(_ attended: Tensor, residual x: Tensor) -> Tensor {
        let (batch, c, n) = (x.size(0), channels, x.size(2) * x.size(3))
        let out = Tensor(uninitialized: x.shape)
        withExtendedLifetime((x, attended, self)) {
            for b in 0..<batch {
                // out[C, n] = x + bias, then += W_out · attendedᵀ.
                let o = out.data + b * c * n
                addChannelBias(channels: c, spatial: n, x: x.data + b * c * n, bias: outBias.data, out: o)
                sgemm(transA: false, transB: true, m: c, n: n, k: c, alpha: 1, a: outWeight.data, lda: c,
                      b: attended.data + b * n * c, ldb: c, beta: 1, c: o, ldc: n)
            }
        }
        return out
    }
}

/// out[ch, j] = x[ch, j] + bias[ch] for x, out: [channels, spatial].
func addChannelBias(channels: Int, spatial: Int, x: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                    out: UnsafeMutablePointer<Float>, pool: ThreadPool = .current) {
    pool.parallelChunks(channels, minChunk: max(1, (1 << 14) / max(spatial, 1))) { range, _ in
        for ch in range {
            let src = x + ch * spatial, dst = out + ch * spatial, b = bias[ch]
            for j in 0..<spatial { dst[j] = src[j] + b }
        }
    }
}
