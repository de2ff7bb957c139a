import Foundation
import ParaDiTTensor
import ParaDiTWeights

// The layers of AutoencoderKLWan's decoder over [B, C, T, H, W] video tensors, and the feature
// cache diffusers decodes with, one latent frame at a time.

/// What a causal convolution keeps between latent frames: nothing yet, diffusers' "Rep" marker of
/// an upsampler that skipped its time convolution on the first frame, or the last input frames.
package enum WanCacheEntry {
    case empty, repeated, frames(Tensor)
}

/// The feature cache of one decode: a slot per causal convolution, taken in call order each frame.
package final class WanFeatureCache {
    package var slots: [WanCacheEntry] = []
    package var cursor = 0

    package init() {}

    /// The next slot, created empty on the first frame.
    package func next() -> Int {
        if cursor == slots.count { slots.append(.empty) }
        defer { cursor += 1 }
        return cursor
    }
}

/// The last `n` frames of x [B, C, T, H, W].
package func lastFrames(_ x: Tensor, _ n: Int) -> Tensor {
    let t = x.size(2)
    return slice(x, axis: 2, max(0, t - n)..<t)
}

/// `WanCausalConv3d`: a Conv3d whose time axis is padded only in front (2·padding frames), by the
/// cached frames of the previous chunk where there are some, then zeros. Computed as a sum over the
/// kernel's time taps of 2-D convolutions of the frames.
package struct WanCausalConv3d {
    /// Per time tap, [out, in, kh, kw].
    let taps: [Tensor]
    let bias: Tensor
    package let frontPadding: Int, padding: (h: Int, w: Int)

    init(_ w: Weights, in inChannels: Int, out outChannels: Int, kernel: (t: Int, h: Int, w: Int), padding p: (t: Int, h: Int, w: Int)) throws {
        let weight = try w.tensor("weight", shape: [outChannels, inChannels, kernel.t, kernel.h, kernel.w])
        taps = (0..<kernel.t).map { slice(weight, axis: 2, $0..<($0 + 1)).reshaped([outChannels, inChannels, kernel.h, kernel.w]) }
        bias = try w.tensor("bias", shape: [outChannels])
        (frontPadding, padding) = (2 * p.t, (p.h, p.w))
    }

    init(_ w: Weights, in inChannels: Int, out outChannels: Int, cube k: Int) throws {
        try self.init(w, in: inChannels, out: outChannels, kernel: (k, k, k), padding: (k / 2, k / 2, k / 2))
    }

    /// x: [B, C, T, H, W]; `cache`: frames to put before x (they replace that much zero padding);
    /// `spatial`: the padding of rows and columns instead of the kernel's (a band with halo rows).
    package func callAsFunction(_ x: Tensor, cache: Tensor? = nil, spatial: (h: Int, w: Int)? = nil) -> Tensor {
        var input = x, zeros = frontPadding
        if let cache, frontPadding > 0 {
            input = concatenate([cache, x], axis: 2)
            zeros -= cache.size(2)
        }
        if zeros > 0 {
            var shape = input.shape
            shape[2] = zeros
            input = concatenate([Tensor(zeros: shape), input], axis: 2)
        }
        let (b, c, t, h, w) = (input.size(0), input.size(1), input.size(2), input.size(3), input.size(4))
        let outT = t - taps.count + 1
        var sum: Tensor?
        for (k, tap) in taps.enumerated() {
            let frames = permuted(slice(input, axis: 2, k..<(k + outT)), [0, 2, 1, 3, 4]).reshaped([b * outT, c, h, w])
            let y = conv2d(frames, weight: tap, bias: k == 0 ? bias : nil, stride: 1, padding: spatial ?? padding)
            sum = sum.map { $0 + y } ?? y
        }
        let out = sum!
        return permuted(out.reshaped([b, outT, out.size(1), out.size(2), out.size(3)]), [0, 2, 1, 3, 4])
    }

    /// The convolution of a chunk through its cache slot, as every cached call site in diffusers:
    /// the slot's frames go in front, then the chunk's last two input frames (one with the slot's
    /// last before it) become the slot.
    package func callAsFunction(_ x: Tensor, cache: WanFeatureCache, spatial: (h: Int, w: Int)? = nil) -> Tensor {
        let slot = cache.next()
        var keep = lastFrames(x, 2)
        let previous: Tensor?
        if case let .frames(f) = cache.slots[slot] { previous = f } else { previous = nil }
        if keep.size(2) < 2, let previous { keep = concatenate([lastFrames(previous, 1), keep], axis: 2) }
        let y = self(x, cache: previous, spatial: spatial)
        cache.slots[slot] = .frames(keep)
        return y
    }
}

/// `WanRMS_norm`: x / max(‖x‖₂ over channels, 1e-12) · √C · gamma, channel-first ([B, C, …]).
package struct WanRMSNorm {
    let gamma: [Float]

    init(_ w: Weights, channels: Int, images: Bool) throws {
        gamma = try w.tensor("gamma", shape: [channels] + Array(repeating: 1, count: images ? 2 : 3)).scalars
    }

    package func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, c) = (x.size(0), x.size(1)), inner = x.count / (b * c)
        let out = Tensor(uninitialized: x.shape), scale = Float(c).squareRoot()
        let src = x.scalars
        let o = out.data
        for n in 0..<b { for p in 0..<inner {
            var sq: Float = 0
            for ch in 0..<c { let v = src[(n * c + ch) * inner + p]; sq += v * v }
            let norm = max(sq.squareRoot(), 1e-12)
            for ch in 0..<c {
                let i = (n * c + ch) * inner + p
                o[i] = src[i] / norm * scale * gamma[ch]
            }
        } }
        return out
    }
}

/// Nearest ×2 upsampling of [N, C, H, W] (diffusers' "nearest-exact" at scale 2 is nearest).
package func upsampleNearest2x(_ x: Tensor) -> Tensor {
    let (n, c, h, w) = (x.size(0), x.size(1), x.size(2), x.size(3))
    let src = x.scalars, out = Tensor(uninitialized: [n, c, 2 * h, 2 * w])
    let o = out.data
    for plane in 0..<(n * c) { for y in 0..<(2 * h) { for xx in 0..<(2 * w) {
        o[(plane * 2 * h + y) * 2 * w + xx] = src[(plane * h + y / 2) * w + xx / 2]
    } } }
    return out
}
