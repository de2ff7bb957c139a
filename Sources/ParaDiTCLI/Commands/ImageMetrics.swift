import Foundation
import ParaDiTDiffusion
import ParaDiTTensor

// How far one generation is from another, for `paradit quality` and `paradit bench cache`.

/// Peak signal-to-noise ratio in dB (infinite for identical signals, reported as 999).
func psnr(peak: Double, mse: Double) -> Double { mse == 0 ? 999 : 10 * log10(peak * peak / mse) }

/// PSNR of latents against a reference, the reference's range as the peak.
func latentPSNR(_ latents: Tensor, _ reference: Tensor) -> Double {
    let (a, b) = (latents.scalars, reference.scalars)
    let range = Double(b.max()! - b.min()!)
    return psnr(peak: range, mse: zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(b.count))
}

/// PSNR of 8-bit images against reference images.
func imagePSNR(_ images: [RGBImage], _ reference: [RGBImage]) -> Double {
    let (a, b) = (images.flatMap(\.pixels), reference.flatMap(\.pixels))
    return psnr(peak: 255, mse: zip(a, b).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) } / Double(b.count))
}

/// A PSNR for a table: "∞" for identical signals.
func dB(_ v: Double) -> String { v >= 999 ? "∞" : fmt(v, digits: 1) + " dB" }
