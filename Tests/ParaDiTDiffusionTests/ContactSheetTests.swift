import ParaDiTDiffusion
import Testing

@Suite("Contact sheet")
struct ContactSheetTests {
    /// A w×h image of one colour.
    func plain(_ w: Int, _ h: Int, _ rgb: [UInt8]) -> RGBImage {
        RGBImage(width: w, height: h, pixels: Array((0..<(w * h)).map { _ in rgb }.joined()))
    }

    @Test("rows of enlarged images beside their labels, gaps in the background colour")
    func layout() throws {
        let colours: [[UInt8]] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]]
        let sheet = try ContactSheet.make(colours.map { plain(16, 16, $0) }, columns: 2, labels: ["7", "10"], scale: 2)
        // Label column: 2 characters × 6 font pixels × 4 px + 2 gaps of 4; cells 32×32 with 4 px gaps.
        let labelWidth = 2 * 6 * 4 + 8
        #expect(sheet.width == labelWidth + 2 * (32 + 4) + 4 && sheet.height == 2 * (32 + 4) + 4)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(sheet.pixels[((y * sheet.width + x) * 3)..<((y * sheet.width + x) * 3 + 3)]) }
        #expect(pixel(labelWidth + 4, 4) == colours[0] && pixel(labelWidth + 4 + 31, 4 + 31) == colours[0])
        #expect(pixel(labelWidth + 4 + 36, 4) == colours[1])
        #expect(pixel(labelWidth + 4, 4 + 36) == colours[2] && pixel(labelWidth + 4 + 36, 4 + 36) == colours[3])
        #expect(pixel(labelWidth + 2, 4) == [24, 24, 24])
        // Each row's label lights font pixels in its own band of the margin: "7" one glyph, "10" two.
        func lit(row: Int, columns: Range<Int>) -> Int {
            (4 + 36 * row..<4 + 36 * row + 32).flatMap { y in columns.map { pixel($0, y) } }.filter { $0 == [235, 235, 235] }.count
        }
        #expect(lit(row: 0, columns: 0..<28) > 0 && lit(row: 0, columns: 28..<labelWidth) == 0)
        #expect(lit(row: 1, columns: 0..<28) > 0 && lit(row: 1, columns: 28..<labelWidth) > 0)
    }

    @Test("mismatched images, columns or labels are refused")
    func refused() {
        #expect(throws: ContactSheetError.self) { try ContactSheet.make([plain(2, 2, [0, 0, 0])], columns: 2, labels: ["1"]) }
        #expect(throws: ContactSheetError.self) {
            try ContactSheet.make([plain(2, 2, [0, 0, 0]), plain(3, 2, [0, 0, 0])], columns: 2, labels: ["1"])
        }
        #expect(throws: ContactSheetError.self) { try ContactSheet.make([plain(2, 2, [0, 0, 0])], columns: 1, labels: []) }
    }
}
