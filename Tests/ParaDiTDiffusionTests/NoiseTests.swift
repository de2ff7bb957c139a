import Foundation
import ParaDiTDiffusion
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// Cases of the fixture written by tools/make_noise_fixtures.py (see its docstring for the names).
@Suite("Noise equals torch.randn")
struct NoiseTests {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/noise/randn.safetensors").path

    static let shapes: [[Int]] = [[1, 4, 8, 8], [2, 4, 16, 16], [1, 16, 32, 32], [1, 4096, 64], [1, 4, 13, 13],
                                  [3], [15], [16], [17], [1000]]
    static let avx2Cases: [(seed: UInt64, shape: [Int])] = [0, 1, 42].flatMap { seed in shapes.map { (seed, $0) } }
    static let libmCases: [(seed: UInt64, shape: [Int])] = [[1, 4, 8, 8], [1, 16, 32, 32], [17], [1000]].map { (0, $0) }
    static let sequence: [[Int]] = [[3], [1, 4, 8, 8], [5], [17], [1], [2, 4, 16, 16], [2]]

    @Test("AVX2 kernel equals torch bit for bit", arguments: avx2Cases)
    func avx2(seed: UInt64, shape: [Int]) throws {
        var g = TorchGenerator(seed: seed)
        try expectTorch(g.randn(shape), "avx2.seed\(seed).\(Self.name(shape))")
    }

    #if canImport(Glibc)
    @Test("libm kernel equals torch's DEFAULT build bit for bit (glibc)", arguments: libmCases)
    func libm(seed: UInt64, shape: [Int]) throws {
        var g = TorchGenerator(seed: seed, kernel: .libm)
        try expectTorch(g.randn(shape), "default.seed\(seed).\(Self.name(shape))")
    }
    #endif

    @Test("successive calls on one generator equal successive torch.randn calls")
    func successiveCalls() throws {
        var g = TorchGenerator(seed: 7)
        for (i, shape) in Self.sequence.enumerated() {
            try expectTorch(g.randn(shape), "avx2.sequence.\(i).\(Self.name(shape))")
        }
    }

    @Test("manualSeed restarts the stream and forgets the cached normal value")
    func reseed() throws {
        var g = TorchGenerator(seed: 7)
        _ = try g.randn([3])  // leaves a cached value behind
        g.manualSeed(7)
        var fresh = TorchGenerator(seed: 7)
        #expect(try g.randn([5]).scalars == fresh.randn([5]).scalars)
        #expect(try g.randn([40]).scalars == fresh.randn([40]).scalars)
    }

    @Test("different seeds give different noise; only the low 32 bits of a seed count, as in torch")
    func seeds() throws {
        var a = TorchGenerator(seed: 1), b = TorchGenerator(seed: 2), c = TorchGenerator(seed: 1 | 1 << 32)
        let x = try a.randn([64])
        #expect(try x.scalars != b.randn([64]).scalars)
        #expect(try x.scalars == c.randn([64]).scalars)
    }

    @Test("the engine is the standard MT19937 (10000th draw from seed 5489)")
    func engine() {
        var mt = MersenneTwister(seed: 5489)
        for _ in 1..<10000 { _ = mt.next() }
        #expect(mt.next() == 4_123_659_995)
    }

    @Test("a negative size is refused")
    func negativeShape() {
        var g = TorchGenerator(seed: 0)
        #expect(throws: WeightsError.self) { try g.randn([2, -1]) }
    }

    // MARK: Helpers

    static func name(_ shape: [Int]) -> String { shape.map(String.init).joined(separator: "x") }

    /// Checks `x` against fixture entry `name`: whole, or its head and tail plus the FNV-1a hash
    /// of all its bytes. Records how many values differ.
    func expectTorch(_ x: Tensor, _ name: String) throws {
        let fixture = try SafeTensorsFile(path: Self.file)
        let values = x.scalars
        if fixture.entries[name] != nil {
            let expected = try fixture.tensor(name)
            #expect(x.shape == expected.shape, "\(name): shape")
            expectBits(values[...], expected.scalars[...], name)
            return
        }
        let head = try fixture.tensor(name + ".head").scalars, tail = try fixture.tensor(name + ".tail").scalars
        expectBits(values.prefix(head.count), head[...], name + " head")
        expectBits(values.suffix(tail.count), tail[...], name + " tail")
        let hash = String(Self.fnv1a64(values), radix: 16)
        #expect(hash.leftPadded(16) == fixture.metadata[name + ".fnv1a64"], "\(name): hash of all \(values.count) values")
    }

    func expectBits(_ got: ArraySlice<Float>, _ want: ArraySlice<Float>, _ name: String) {
        #expect(got.count == want.count, "\(name): count")
        let differing = zip(got, want).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
        let first = differing.first.map { "\($0.offset): \($0.element.0) vs \($0.element.1)" } ?? ""
        let differingCount = differing.count
        #expect(differingCount == 0, "\(name): \(differingCount) of \(want.count) values differ, first at \(first)")
    }

    static func fnv1a64(_ values: [Float]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for v in values {
            var bits = v.bitPattern.littleEndian
            for _ in 0..<4 {
                h = (h ^ UInt64(bits & 0xFF)) &* 0x100_0000_01B3
                bits >>= 8
            }
        }
        return h
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
