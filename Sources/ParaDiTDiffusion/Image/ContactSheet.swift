// A contact sheet: generated images in a grid, one row per class, each row labelled with its class
// id in a small bitmap font, so a person sees at a glance what a class-conditional model makes.

public enum ContactSheet {
    /// Lays out `images` (equal sizes, row-major: `columns` per row) enlarged `scale`× by pixel
    /// repetition, with `labels[r]` written left of row r on a dark background.
    public static func make(_ images: [RGBImage], columns: Int, labels: [String], scale: Int = 2) throws -> RGBImage {
        guard let first = images.first, columns >= 1, scale >= 1, images.count % columns == 0,
              labels.count == images.count / columns,
              images.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
            throw ContactSheetError(reason: "\(images.count) images of equal size in rows of \(columns) with a label each, "
                                    + "got \(labels.count) labels")
        }
        let (cell, gap, glyph) = (first.width * scale, 2 * scale, 2 * scale)  // glyph: font pixel size
        let labelWidth = (labels.map(\.count).max() ?? 0) * 6 * glyph + 2 * gap
        let rows = labels.count
        let width = labelWidth + columns * (cell + gap) + gap, height = rows * (first.height * scale + gap) + gap
        var pixels = [UInt8](repeating: 24, count: width * height * 3)
        for (i, image) in images.enumerated() {
            let (x0, y0) = (labelWidth + gap + (i % columns) * (cell + gap), gap + (i / columns) * (first.height * scale + gap))
            for y in 0..<(first.height * scale) {
                for x in 0..<cell {
                    let src = ((y / scale) * first.width + x / scale) * 3, dst = ((y0 + y) * width + x0 + x) * 3
                    pixels[dst] = image.pixels[src]
                    pixels[dst + 1] = image.pixels[src + 1]
                    pixels[dst + 2] = image.pixels[src + 2]
                }
            }
        }
        for (r, label) in labels.enumerated() {
            let y0 = gap + r * (first.height * scale + gap) + (first.height * scale - 7 * glyph) / 2
            for (k, character) in label.enumerated() {
                draw(character, x0: gap + k * 6 * glyph, y0: y0, size: glyph, into: &pixels, width: width, height: height)
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// One 5×7 glyph, each font pixel a `size`² white square; characters without a glyph are blank.
    static func draw(_ c: Character, x0: Int, y0: Int, size: Int, into pixels: inout [UInt8], width: Int, height: Int) {
        guard let rows = font[c] else { return }
        for (gy, bits) in rows.enumerated() {
            for gx in 0..<5 where bits & (0b10000 >> gx) != 0 {
                for y in (y0 + gy * size)..<(y0 + (gy + 1) * size) where y >= 0 && y < height {
                    for x in (x0 + gx * size)..<(x0 + (gx + 1) * size) where x >= 0 && x < width {
                        pixels.replaceSubrange(((y * width + x) * 3)..<((y * width + x) * 3 + 3), with: [235, 235, 235])
                    }
                }
            }
        }
    }

    /// Digits of a classic 5×7 font, one row of 5 bits per line, top to bottom.
    static let font: [Character: [UInt8]] = [
        "0": [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], "1": [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        "2": [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], "3": [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        "4": [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], "5": [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        "6": [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], "7": [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        "8": [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], "9": [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
    ]
}

public struct ContactSheetError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { "contact sheet: \(reason)" }
}
