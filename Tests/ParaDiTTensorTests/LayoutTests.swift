import ParaDiTTensor
import Testing

@Suite("Layout kernels and tensor views")
struct LayoutTests {
    @Test("head permute equals reference and is its own inverse", arguments: [(1, 1, 1, 1), (2, 7, 3, 9), (1, 129, 16, 8)])
    func permute(a: Int, b: Int, c: Int, d: Int) {
        let x = Tensor.randn([a, b, c, d], seed: 1)
        let out = permuteHeads(x), ref = Tensor(zeros: out.shape)
        permute0213Reference(a: a, b: b, c: c, d: d, x: x.data, out: ref.data)
        #expect(out.shape == [a, c, b, d])
        #expect(out.scalars == ref.scalars)
        #expect(permuteHeads(out).scalars == x.scalars)
    }

    @Test("slicing then concatenating the sequence axis gives the original")
    func sliceConcat() {
        let x = Tensor.randn([2, 17, 3, 4], seed: 2)
        let parts = [0..<5, 5..<6, 6..<17].map { sliceSequence(x, $0) }
        #expect(parts.map { $0.size(1) } == [5, 1, 11])
        #expect(parts[1][index: [1, 0, 2, 3]] == x[index: [1, 5, 2, 3]])
        #expect(concatSequence(parts).scalars == x.scalars)
    }

    @Test("strided 2-D copy")
    func stridedCopy() {
        let src = Tensor.randn([6, 10], seed: 3), dst = Tensor(zeros: [6, 4])
        copy2D(rows: 6, cols: 4, src: src.data + 3, lds: 10, dst: dst.data, ldd: 4)
        for r in 0..<6 { for c in 0..<4 { #expect(dst[index: [r, c]] == src[index: [r, c + 3]]) } }
    }

    @Test("views share storage: rows, index and reshape")
    func views() {
        let t = Tensor(shape: [4, 3], values: (0..<12).map(Float.init))
        let middle = t.rows(1..<3)
        #expect(middle.shape == [2, 3] && middle.scalars == [3, 4, 5, 6, 7, 8])
        middle.data[0] = 100
        #expect(t[index: [1, 0]] == 100)
        #expect(t[3].scalars == [9, 10, 11])
        #expect(t.reshaped([2, -1]).shape == [2, 6])
        #expect(t.copy().storage !== t.storage)
    }
}
