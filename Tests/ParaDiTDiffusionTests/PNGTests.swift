import Foundation
import ParaDiTTensor
import Testing
@testable import ParaDiTDiffusion

/// A PNG chunk as read back from a file.
private struct Chunk {
    var type: String
    var data: [UInt8]
    var crc: UInt32
}

private func bigEndian(_ b: ArraySlice<UInt8>) -> UInt32 { b.reduce(0) { $0 << 8 | UInt32($1) } }

/// Splits a PNG file into its chunks after checking the signature.
private func chunks(_ file: [UInt8]) throws -> [Chunk] {
    try #require(Array(file.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    var out: [Chunk] = [], at = 8
    while at < file.count {
        try #require(at + 12 <= file.count)
        let length = Int(bigEndian(file[at..<(at + 4)]))
        try #require(at + 12 + length <= file.count)
        let type = String(decoding: file[(at + 4)..<(at + 8)], as: UTF8.self)
        out.append(Chunk(type: type, data: Array(file[(at + 8)..<(at + 8 + length)]),
                         crc: bigEndian(file[(at + 8 + length)..<(at + 12 + length)])))
        at += 12 + length
    }
    return out
}

/// An independent inflater for the block types the writer may emit (stored and fixed Huffman).
private struct Inflater {
    let bytes: [UInt8]
    var bit = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func inflate(_ bytes: [UInt8]) throws -> [UInt8] {
        var inflater = Inflater(bytes)
        return try inflater.inflate()
    }

    mutating func bits(_ n: Int) throws -> Int {
        var v = 0
        for i in 0..<n {
            try #require(bit / 8 < bytes.count, "read past the end of the deflate stream")
            v |= Int((bytes[bit / 8] >> UInt8(bit % 8)) & 1) << i
            bit += 1
        }
        return v
    }

    /// A fixed-Huffman literal/length symbol: its code is read most significant bit first.
    mutating func symbol() throws -> Int {
        var code = 0
        for _ in 0..<7 { code = code << 1 | (try bits(1)) }
        if code <= 0b0010111 { return 256 + code }
        code = code << 1 | (try bits(1))
        if (0x30...0xBF).contains(code) { return code - 0x30 }
        if (0xC0...0xC7).contains(code) { return 280 + code - 0xC0 }
        code = code << 1 | (try bits(1))
        return 144 + code - 0x190
    }

    mutating func inflate() throws -> [UInt8] {
        var out: [UInt8] = [], final = 0
        while final == 0 {
            final = try bits(1)
            switch try bits(2) {
            case 0:
                bit = (bit + 7) / 8 * 8
                let length = try bits(16), complement = try bits(16)
                try #require(length ^ complement == 0xFFFF)
                for _ in 0..<length { out.append(UInt8(try bits(8))) }
            case 1:
                try fixedBlock(&out)
            case let type:
                Issue.record("block type \(type) is not one the writer emits")
                return out
            }
        }
        return out
    }

    mutating func fixedBlock(_ out: inout [UInt8]) throws {
        while true {
            let s = try symbol()
            if s < 256 { out.append(UInt8(s)); continue }
            if s == 256 { return }
            let l = s - 257
            let length = Deflate.lengthBase[l] + (try bits(Deflate.lengthExtra[l]))
            var d = 0
            for _ in 0..<5 { d = d << 1 | (try bits(1)) }
            let distance = Deflate.distanceBase[d] + (try bits(Deflate.distanceExtra[d]))
            try #require(distance <= out.count, "distance \(distance) reaches before the start")
            for _ in 0..<length { out.append(out[out.count - distance]) }
        }
    }
}

/// The zlib stream's payload after checking its header and Adler-32 (computed here, independently).
private func unzlib(_ stream: [UInt8]) throws -> [UInt8] {
    try #require(stream.count >= 6 && stream[0] & 0x0F == 8 && (Int(stream[0]) << 8 | Int(stream[1])) % 31 == 0)
    let data = try Inflater.inflate(Array(stream[2..<(stream.count - 4)]))
    var a = 1, b = 0
    for byte in data { a = (a + Int(byte)) % 65521; b = (b + a) % 65521 }
    #expect(bigEndian(stream[(stream.count - 4)...]) == UInt32(b << 16 | a))
    return data
}

/// Undoes the PNG scanline filters.
private func unfilter(_ data: [UInt8], width: Int, height: Int) throws -> [UInt8] {
    let stride = width * 3
    try #require(data.count == (stride + 1) * height)
    var px = [UInt8](repeating: 0, count: stride * height)
    for y in 0..<height {
        let filter = data[y * (stride + 1)]
        for i in 0..<stride {
            let x = data[y * (stride + 1) + 1 + i]
            let a = i >= 3 ? Int(px[y * stride + i - 3]) : 0, b = y > 0 ? Int(px[(y - 1) * stride + i]) : 0
            let c = i >= 3 && y > 0 ? Int(px[(y - 1) * stride + i - 3]) : 0
            let p = a + b - c, (pa, pb, pc) = (abs(p - a), abs(p - b), abs(p - c))
            let predictor = [0, a, b, (a + b) / 2, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][Int(filter)]
            px[y * stride + i] = x &+ UInt8(predictor)
        }
    }
    return px
}

/// Decodes a file the writer produced, checking every structural rule on the way.
private func decodePNG(_ file: [UInt8]) throws -> RGBImage {
    let parts = try chunks(file)
    try #require(parts.map(\.type) == ["IHDR", "IDAT", "IEND"])
    for chunk in parts { #expect(chunk.crc == PNGWriter.crc32(Array(chunk.type.utf8) + chunk.data), "CRC of \(chunk.type)") }
    let header = parts[0].data
    try #require(header.count == 13 && Array(header[8...]) == [8, 2, 0, 0, 0])
    #expect(parts[2].data.isEmpty)
    let (width, height) = (Int(bigEndian(header[0..<4])), Int(bigEndian(header[4..<8])))
    let pixels = try unfilter(try unzlib(parts[1].data), width: width, height: height)
    return RGBImage(width: width, height: height, pixels: pixels)
}

private func image(width: Int, height: Int, _ pixel: (Int, Int, Int) -> Int) -> RGBImage {
    var pixels: [UInt8] = []
    for y in 0..<height { for x in 0..<width { for c in 0..<3 { pixels.append(UInt8(truncatingIfNeeded: pixel(x, y, c))) } } }
    return RGBImage(width: width, height: height, pixels: pixels)
}

@Suite("PNG writer")
struct PNGTests {
    @Test("CRC-32 and Adler-32 of the standard check strings")
    func checksums() {
        #expect(PNGWriter.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(PNGWriter.crc32(Array("IEND".utf8)) == 0xAE42_6082)
        #expect(PNGWriter.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
        #expect(PNGWriter.adler32([UInt8](repeating: 255, count: 100_000)) == 0x149A_302C)
    }

    @Test("images round-trip through an independent decoder", arguments: [
        "noise", "gradient", "flat", "stripes", "1×1", "tall",
    ])
    func roundTrip(kind: String) throws {
        var rng = SplitMix64(seed: 7)
        let source: RGBImage
        switch kind {
        case "noise": source = image(width: 37, height: 23) { _, _, _ in Int(rng.next() & 0xFF) }
        case "gradient": source = image(width: 64, height: 48) { x, y, c in x * 4 + y * 2 + c * 50 }
        case "flat": source = image(width: 300, height: 200) { _, _, c in 40 + c }
        case "stripes": source = image(width: 250, height: 180) { x, y, c in (x / 7 + y / 5) % 2 == 0 ? 200 : c * 30 }
        case "1×1": source = image(width: 1, height: 1) { _, _, c in 10 * c + 1 }
        default: source = image(width: 3, height: 500) { _, y, c in (y * y + c) % 251 }
        }
        let file = PNGWriter.encode(source)
        #expect(try decodePNG(file) == source)
        if kind == "flat" { #expect(file.count < 2_000, "a flat 300×200 image took \(file.count) bytes") }
    }

    @Test("deflate round-trips data longer than its window, with far matches")
    func deflateLong() throws {
        var rng = SplitMix64(seed: 11)
        let block = (0..<40_000).map { _ in UInt8(rng.next() % 7) }
        let data = block + block + Array(block.prefix(5_000))  // a copy 40 000 bytes back, beyond the 32 KiB window
        #expect(try Inflater.inflate(Deflate.compress(data)) == data)
        #expect(try Inflater.inflate(Deflate.compress([])) == [])
    }

    @Test("write(to:) writes the encoded file and reports an unwritable path")
    func writeFile() throws {
        let source = image(width: 5, height: 4) { x, y, c in x * 50 + y * 10 + c }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-\(UUID().uuidString).png").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PNGWriter.write(source, to: path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(PNGWriter.encode(source)))
        #expect(throws: ImageError.self) { try PNGWriter.write(source, to: "/nonexistent-dir/x.png") }
    }
}
