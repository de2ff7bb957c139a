import Foundation

// Element-wise kernels: one SIMD pass over contiguous memory, spread over the pool in chunks.
// In-place use (out == an input) is allowed everywhere.

/// Smallest chunk handed to one thread: below this, waking a thread costs more than the work.
let elementwiseGrain = 1 << 14

/// A lane-wise operation. Kernels are generic over the operation's type rather than taking a
/// closure: a closure captured by the pool's work item stays an opaque call per vector, while a
/// static method of a concrete type is specialised and inlined.
protocol UnaryOp { static func apply(_ v: F8) -> F8 }
protocol BinaryOp { static func apply(_ a: F8, _ b: F8) -> F8 }

/// Applies `Op` lane-wise to x[0..<count] into out, tail included (the tail goes through the same
/// vector code, so results do not depend on where an element falls).
@inline(__always)
func mapUnary<Op: UnaryOp>(_: Op.Type, _ count: Int, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                           _ pool: ThreadPool) {
    pool.parallelChunks((count + 7) / 8, minChunk: elementwiseGrain / 8) { range, _ in
        let lo = range.lowerBound * 8, hi = min(range.upperBound * 8, count)
        var i = lo
        // Four independent vectors per trip: long polynomial chains (erfc, exp) overlap.
        while i + 32 <= hi {
            let y0 = Op.apply(load8(x + i)), y1 = Op.apply(load8(x + i + 8))
            let y2 = Op.apply(load8(x + i + 16)), y3 = Op.apply(load8(x + i + 24))
            store8(y0, out + i); store8(y1, out + i + 8); store8(y2, out + i + 16); store8(y3, out + i + 24)
            i += 32
        }
        while i + 8 <= hi { store8(Op.apply(load8(x + i)), out + i); i += 8 }
        if i < hi { storePartial(Op.apply(loadPartial(x + i, hi - i)), out + i, hi - i) }
    }
}

@inline(__always)
func mapBinary<Op: BinaryOp>(_: Op.Type, _ count: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                             _ out: UnsafeMutablePointer<Float>, _ pool: ThreadPool) {
    pool.parallelChunks((count + 7) / 8, minChunk: elementwiseGrain / 8) { range, _ in
        let lo = range.lowerBound * 8, hi = min(range.upperBound * 8, count)
        var i = lo
        while i + 8 <= hi { store8(Op.apply(load8(a + i), load8(b + i)), out + i); i += 8 }
        if i < hi { storePartial(Op.apply(loadPartial(a + i, hi - i), loadPartial(b + i, hi - i)), out + i, hi - i) }
    }
}

enum AddOp: BinaryOp { @_transparent static func apply(_ a: F8, _ b: F8) -> F8 { a + b } }
enum MulOp: BinaryOp { @_transparent static func apply(_ a: F8, _ b: F8) -> F8 { a * b } }

/// 0.5·x·(1 + tanh(u)) = x / (1 + e^(−2u)), u = √(2/π)·(x + 0.044715·x³).
enum GELUTanhOp: UnaryOp {
    @_transparent static func apply(_ v: F8) -> F8 {
        let u = 0.7978845608028654 * v.addingProduct(0.044715 * v, v * v)
        return v / (1 + exp8(-2 * u))
    }
}

/// 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(−x/√2), accurate in the negative tail too.
enum GELUErfOp: UnaryOp {
    @_transparent static func apply(_ v: F8) -> F8 { 0.5 * v * erfc8(v * -0.7071067811865476) }
}

enum SiLUOp: UnaryOp { @_transparent static func apply(_ v: F8) -> F8 { v / (1 + exp8(-v)) } }
enum QuickGELUOp: UnaryOp { @_transparent static func apply(_ v: F8) -> F8 { v / (1 + exp8(-1.702 * v)) } }

// MARK: - Arithmetic

/// out = a + b over `count` elements.
public func add(count: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                pool: ThreadPool = .current) {
    mapBinary(AddOp.self, count, a, b, out, pool)
}

/// out = a · b over `count` elements.
public func mul(count: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                pool: ThreadPool = .current) {
    mapBinary(MulOp.self, count, a, b, out, pool)
}

/// out = x · s over `count` elements.
public func scale(count: Int, _ x: UnsafePointer<Float>, by s: Float, out: UnsafeMutablePointer<Float>,
                  pool: ThreadPool = .current) {
    pool.parallelChunks(count, minChunk: elementwiseGrain) { range, _ in
        var i = range.lowerBound
        while i + 8 <= range.upperBound { store8(load8(x + i) * s, out + i); i += 8 }
        while i < range.upperBound { out[i] = x[i] * s; i += 1 }
    }
}

/// adaLN "modulate": out[b, t, :] = x[b, t, :] · (1 + scale[b, :]) + shift[b, :]
/// for x: [batch, tokens, dim], scale and shift: [batch, dim] with row stride `paramStride`
/// (so they can be read straight out of a chunked modulation vector).
public func modulate(batch: Int, tokens: Int, dim: Int, x: UnsafePointer<Float>,
                     scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, paramStride: Int,
                     out: UnsafeMutablePointer<Float>, pool: ThreadPool = .current) {
    pool.parallelChunks(batch * tokens, minChunk: max(1, elementwiseGrain / max(dim, 1))) { rows, _ in
        for row in rows {
            let b = row / tokens
            let sc = scale + b * paramStride, sh = shift + b * paramStride
            let xr = x + row * dim, o = out + row * dim
            var j = 0
            while j + 8 <= dim { store8(load8(xr + j) * (1 + load8(sc + j)) + load8(sh + j), o + j); j += 8 }
            while j < dim { o[j] = xr[j] * (1 + sc[j]) + sh[j]; j += 1 }
        }
    }
}

/// Reference for `modulate`.
public func modulateReference(batch: Int, tokens: Int, dim: Int, x: UnsafePointer<Float>,
                              scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, paramStride: Int,
                              out: UnsafeMutablePointer<Float>) {
    for b in 0..<batch { for t in 0..<tokens { for j in 0..<dim {
        let i = (b * tokens + t) * dim + j
        out[i] = x[i] * (1 + scale[b * paramStride + j]) + shift[b * paramStride + j]
    } } }
}

/// adaLN-zero gated residual: out[b, t, :] = residual[b, t, :] + gate[b, :] · y[b, t, :].
public func gatedAdd(batch: Int, tokens: Int, dim: Int, residual: UnsafePointer<Float>,
                     gate: UnsafePointer<Float>, paramStride: Int, y: UnsafePointer<Float>,
                     out: UnsafeMutablePointer<Float>, pool: ThreadPool = .current) {
    pool.parallelChunks(batch * tokens, minChunk: max(1, elementwiseGrain / max(dim, 1))) { rows, _ in
        for row in rows {
            let g = gate + (row / tokens) * paramStride
            let r = residual + row * dim, yr = y + row * dim, o = out + row * dim
            var j = 0
            while j + 8 <= dim { store8(load8(r + j) + load8(g + j) * load8(yr + j), o + j); j += 8 }
            while j < dim { o[j] = r[j] + g[j] * yr[j]; j += 1 }
        }
    }
}

/// Reference for `gatedAdd`.
public func gatedAddReference(batch: Int, tokens: Int, dim: Int, residual: UnsafePointer<Float>,
                              gate: UnsafePointer<Float>, paramStride: Int, y: UnsafePointer<Float>,
                              out: UnsafeMutablePointer<Float>) {
    for b in 0..<batch { for t in 0..<tokens { for j in 0..<dim {
        let i = (b * tokens + t) * dim + j
        out[i] = residual[i] + gate[b * paramStride + j] * y[i]
    } } }
}

// MARK: - Activations

/// The two GELU forms of torch: exact (`erf`) and `approximate="tanh"`.
public enum GELUApproximation: Sendable { case none, tanh }

/// GELU over `count` elements.
public func gelu(count: Int, _ x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                 approximation: GELUApproximation, pool: ThreadPool = .current) {
    switch approximation {
    case .tanh: mapUnary(GELUTanhOp.self, count, x, out, pool)
    case .none: mapUnary(GELUErfOp.self, count, x, out, pool)
    }
}

/// Reference for `gelu`, through libm in Double.
public func geluReference(count: Int, _ x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                          approximation: GELUApproximation) {
    for i in 0..<count {
        let v = Double(x[i])
        switch approximation {
        case .tanh: out[i] = Float(0.5 * v * (1 + Foundation.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))))
        case .none: out[i] = Float(0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot())))
        }
    }
}

/// SiLU (swish): x · sigmoid(x) over `count` elements.
public func silu(count: Int, _ x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, pool: ThreadPool = .current) {
    mapUnary(SiLUOp.self, count, x, out, pool)
}

/// Reference for `silu`.
public func siluReference(count: Int, _ x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
    for i in 0..<count { let v = Double(x[i]); out[i] = Float(v / (1 + Foundation.exp(-v))) }
}

/// CLIP's quick GELU (transformers' `quick_gelu`): x · sigmoid(1.702·x) over `count` elements.
public func quickGELU(count: Int, _ x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, pool: ThreadPool = .current) {
    mapUnary(QuickGELUOp.self, count, x, out, pool)
}

/// Reference for `quickGELU`.
public func quickGELUReference(count: Int, _ x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
    for i in 0..<count { let v = Double(x[i]); out[i] = Float(v / (1 + Foundation.exp(-1.702 * v))) }
}

// MARK: - Tensor-level

public func + (a: Tensor, b: Tensor) -> Tensor {
    check(a.shape == b.shape, "add: shapes differ, \(a.shape) vs \(b.shape)")
    let out = Tensor(uninitialized: a.shape)
    withExtendedLifetime((a, b)) { add(count: a.count, a.data, b.data, out: out.data) }
    return out
}

public func * (a: Tensor, b: Tensor) -> Tensor {
    check(a.shape == b.shape, "mul: shapes differ, \(a.shape) vs \(b.shape)")
    let out = Tensor(uninitialized: a.shape)
    withExtendedLifetime((a, b)) { mul(count: a.count, a.data, b.data, out: out.data) }
    return out
}

public func gelu(_ x: Tensor, approximation: GELUApproximation = .none) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime(x) { gelu(count: x.count, x.data, out: out.data, approximation: approximation) }
    return out
}

public func quickGELU(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime(x) { quickGELU(count: x.count, x.data, out: out.data) }
    return out
}

public func silu(_ x: Tensor) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime(x) { silu(count: x.count, x.data, out: out.data) }
    return out
}

/// x: [B, T, D] · (1 + scale) + shift with scale, shift: [B, D].
public func modulate(_ x: Tensor, scale: Tensor, shift: Tensor) -> Tensor {
    check(x.rank == 3 && scale.shape == [x.size(0), x.size(2)] && shift.shape == scale.shape,
          "modulate: x \(x.shape) needs scale and shift [\(x.size(0)), \(x.size(-1))], got \(scale.shape), \(shift.shape)")
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime((x, scale, shift)) {
        modulate(batch: x.size(0), tokens: x.size(1), dim: x.size(2), x: x.data, scale: scale.data,
                 shift: shift.data, paramStride: x.size(2), out: out.data)
    }
    return out
}

/// x: [B, T, D] · (1 + scale) + shift with scale, shift: views of B rows of D columns (chunks of
/// a modulation vector, read in place).
public func modulate(_ x: Tensor, scale: StridedView, shift: StridedView) -> Tensor {
    check(x.rank == 3 && scale.rows == x.size(0) && shift.rows == x.size(0) && scale.width == x.size(2)
          && shift.width == x.size(2) && scale.rowStride == shift.rowStride,
          "modulate: x \(x.shape) needs scale and shift views of [\(x.size(0)), \(x.size(2))]")
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime((x, scale, shift)) {
        modulate(batch: x.size(0), tokens: x.size(1), dim: x.size(2), x: x.data, scale: scale.data,
                 shift: shift.data, paramStride: scale.rowStride, out: out.data)
    }
    return out
}

/// In place: residual [B, T, D] += gate · y, gate a view of B rows of D columns.
public func gatedAdd(into residual: Tensor, gate: StridedView, _ y: Tensor) {
    check(residual.rank == 3 && y.shape == residual.shape && gate.rows == residual.size(0) && gate.width == residual.size(2),
          "gatedAdd: residual \(residual.shape), y \(y.shape), gate of \(gate.rows) rows × \(gate.width)")
    withExtendedLifetime((residual, gate, y)) {
        gatedAdd(batch: residual.size(0), tokens: residual.size(1), dim: residual.size(2), residual: residual.data,
                 gate: gate.data, paramStride: gate.rowStride, y: y.data, out: residual.data)
    }
}

/// In place: x += y elementwise (same element count).
public func addInPlace(_ x: Tensor, _ y: Tensor) {
    check(x.count == y.count, "addInPlace: \(x.shape) and \(y.shape) differ in size")
    withExtendedLifetime((x, y)) { add(count: x.count, x.data, y.data, out: x.data) }
}

/// In place: every block of y.count consecutive elements of x += y (a [T, D] table onto
/// [B, T, D], say).
public func addBroadcast(into x: Tensor, _ y: Tensor) {
    check(y.count > 0 && x.count % y.count == 0, "addBroadcast: \(y.shape) does not tile \(x.shape)")
    withExtendedLifetime((x, y)) {
        for i in 0..<(x.count / y.count) { add(count: y.count, x.data + i * y.count, y.data, out: x.data + i * y.count) }
    }
}

/// x · s.
public func scaled(_ x: Tensor, by s: Float) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    withExtendedLifetime(x) { scale(count: x.count, x.data, by: s, out: out.data) }
    return out
}

/// Classifier-free guidance: uncond + scale · (cond − uncond), each operation rounded to float32
/// as torch computes it.
public func guidanceCombine(uncond: Tensor, cond: Tensor, scale g: Float) -> Tensor {
    check(uncond.shape == cond.shape, "guidance: \(uncond.shape) vs \(cond.shape)")
    let out = Tensor(uninitialized: cond.shape)
    withExtendedLifetime((uncond, cond)) {
        let (u, c, o) = (uncond.data, cond.data, out.data)
        for i in 0..<out.count { o[i] = u[i] + g * (c[i] - u[i]) }
    }
    return out
}

/// a − b, elementwise (same shape).
public func difference(_ a: Tensor, _ b: Tensor) -> Tensor {
    check(a.shape == b.shape, "difference: \(a.shape) and \(b.shape) differ")
    let out = Tensor(uninitialized: a.shape)
    withExtendedLifetime((a, b)) { for i in 0..<a.count { out.data[i] = a.data[i] - b.data[i] } }
    return out
}

/// Σ|a − b| in Double (same shape): the numerator of a relative L1 change.
public func l1Distance(_ a: Tensor, _ b: Tensor) -> Double {
    check(a.shape == b.shape, "l1Distance: \(a.shape) and \(b.shape) differ")
    return withExtendedLifetime((a, b)) { (0..<a.count).reduce(0.0) { $0 + Double(abs(a.data[$1] - b.data[$1])) } }
}

/// Σ|x| in Double.
public func l1Norm(_ x: Tensor) -> Double {
    withExtendedLifetime(x) { (0..<x.count).reduce(0.0) { $0 + Double(abs(x.data[$1])) } }
}

/// Whether every element is finite (no NaN, no ±Inf).
public func allFinite(_ x: Tensor) -> Bool {
    withExtendedLifetime(x) {
        let p = x.data
        var i = 0, bad = F8(repeating: 0)
        while i + 8 <= x.count {
            let v = load8(p + i)
            // v − v is 0 for finite values and NaN for NaN and ±Inf.
            bad += v - v
            i += 8
        }
        var tail: Float = 0
        while i < x.count { tail += p[i] - p[i]; i += 1 }
        return bad.sum() == 0 && tail == 0
    }
}
