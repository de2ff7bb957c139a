import Foundation
import ParaDiTTensor
import Testing

/// ‖a − b‖₂ / ‖b‖₂ over `count` elements (the conformance metric of every op); 0 when both are 0.
func relativeL2(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<count {
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    if den == 0 { return num == 0 ? 0 : .infinity }
    return (num / den).squareRoot()
}

func relativeL2(_ a: Tensor, _ b: Tensor) -> Double {
    #expect(a.count == b.count, "element counts differ: \(a.shape) vs \(b.shape)")
    return withExtendedLifetime((a, b)) { relativeL2(a.data, b.data, count: min(a.count, b.count)) }
}

func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    var m: Float = 0
    for i in 0..<min(a.count, b.count) { m = max(m, abs(a.data[i] - b.data[i])) }
    return m
}

/// Expects `actual` within relative L2 `tolerance` of `expected`, naming the case on failure.
func expectClose(_ actual: Tensor, _ expected: Tensor, tolerance: Double, _ what: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    let err = relativeL2(actual, expected)
    #expect(err <= tolerance, "\(what): relative L2 error \(err) > \(tolerance)", sourceLocation: sourceLocation)
    #expect(!actual.scalars.contains { $0.isNaN }, "\(what): NaN in output", sourceLocation: sourceLocation)
}

/// Pools of 1, 2 and 3 threads: every kernel must give the same answer however it is split.
let testPools = [ThreadPool(threads: 1), ThreadPool(threads: 2), ThreadPool(threads: 3)]

/// Sizes that catch edge cases: 1, primes, one past and one short of SIMD and tile multiples.
let oddSizes = [1, 2, 7, 8, 9, 15, 16, 17, 33, 129]
