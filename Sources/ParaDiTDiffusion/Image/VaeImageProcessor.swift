import ParaDiTTensor
import ParaDiTWeights

/// An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// width · height · 3 bytes.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        check(width > 0 && height > 0 && pixels.count == width * height * 3,
              "RGBImage \(width)×\(height) needs \(width * height * 3) bytes, got \(pixels.count)")
        (self.width, self.height, self.pixels) = (width, height, pixels)
    }
}

/// The output half of diffusers' `VaeImageProcessor` (`postprocess` to PIL images).
public enum VaeImageProcessor {
    /// Decoded images [B, 3, H, W] in [−1, 1] → 8-bit RGB, exactly as diffusers: `x·0.5 + 0.5`
    /// clamped to [0, 1] in float32, then numpy's `(v * 255).round().astype("uint8")` (float32
    /// product, ties to even). NaN is refused (numpy would make it an arbitrary byte, in practice black).
    public static func postprocess(_ images: Tensor) throws -> [RGBImage] {
        guard images.rank == 4, images.size(1) == 3, images.size(0) > 0, images.size(2) > 0, images.size(3) > 0 else {
            throw WeightsError.badInput(name: "images", reason: "has shape \(images.shape), expected decoded RGB images [B, 3, H, W]")
        }
        let nan = images.scalars.filter(\.isNaN).count
        guard nan == 0 else {
            throw WeightsError.badInput(name: "images", reason: "the decoded image has \(nan) NaN values from finite latents; "
                                        + "check the VAE weights")
        }
        let (batch, height, width) = (images.size(0), images.size(2), images.size(3))
        let plane = height * width
        return withExtendedLifetime(images) {
            (0..<batch).map { b in
                let src = images.data + b * 3 * plane
                var pixels = [UInt8](repeating: 0, count: plane * 3)
                pixels.withUnsafeMutableBufferPointer { dst in
                    for c in 0..<3 {
                        for i in 0..<plane { dst[i * 3 + c] = toByte(src[c * plane + i]) }
                    }
                }
                return RGBImage(width: width, height: height, pixels: pixels)
            }
        }
    }

    @inline(__always)
    static func toByte(_ x: Float) -> UInt8 {
        guard !x.isNaN else { return 0 }
        let v = min(max(x * 0.5 + 0.5, 0), 1)
        return UInt8((v * 255).rounded(.toNearestOrEven))
    }
}
