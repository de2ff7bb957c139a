import Foundation
import ParaDiTTensor

/// `--weights-dtype`: the element type linear weights are held in. `stored` keeps a checkpoint's
/// BF16 and F16 weights as they are (in place in the mapped file) and F32 as Float32; the others
/// convert every linear weight at load (INT8: symmetric, one scale per output channel). Compute
/// stays Float32 (narrow weights are widened block by block inside the GEMM); norms, biases,
/// embeddings and convolutions stay Float32. `int8-dynamic` holds INT8 weights too, and quantizes each
/// GEMM's input per token to 8 bits so the product runs on 8-bit integer kernels (VNNI/AMX through
/// oneDNN): faster, and less exact than `int8` (docs/QUALITY.md).
public enum WeightsDType: String, Sendable, CaseIterable {
    case stored, f32, bf16, f16, int8
    case int8Dynamic = "int8-dynamic"

    /// Whether linear weights become INT8.
    public var isInt8: Bool { self == .int8 || self == .int8Dynamic }
}

/// `--dtype`: what the transformer's linear layers and attention compute in. `bf16` holds every linear
/// weight of its blocks in BF16 (a BF16 checkpoint's in place, with no conversion) and rounds each
/// layer's input to BF16, summing in Float32; attention's operands are rounded alike
/// (`AttentionPrecision`); the embedders and output layers, norms, softmax statistics, the timestep
/// path and the scheduler stay Float32.
public enum ComputeDType: String, Sendable, CaseIterable {
    case f32, bf16

    /// Why this compute type cannot run on `weights`, or nil when it can.
    public func refusal(weights: WeightsDType) -> String? {
        guard self == .bf16, weights != .stored, weights != .bf16 else { return nil }
        return "--dtype bf16 computes on BF16 weights: use --weights-dtype stored or bf16 (not \(weights.rawValue))"
    }
}

/// Bytes owned outside Swift arrays, so a weight can point into them for as long as it lives.
final class ByteBuffer: @unchecked Sendable {
    let base: UnsafeRawPointer

    init(_ bytes: [UInt8]) {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        base = UnsafeRawPointer(raw)
    }

    deinit { UnsafeMutableRawPointer(mutating: base).deallocate() }
}
