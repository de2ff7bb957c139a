import Foundation
import ParaDiTDiffusion
import ParaDiTTensor
import Testing

/// A PNG chunk as read back from a file.
private struct Chunk {
    var type: String
    var data: [UInt8]
    var crc: UInt32
}

/// CRC-32 as the PNG specification computes it, bit by bit (independent of the writer's table).
private func crc32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        c ^= UInt32(byte)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return ~c
}

/// RFC 1951's length (codes 257…285) and distance (codes 0…29) bases and extra bits.
private let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
                          163, 195, 227, 258]
private let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
private let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
                            2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
private let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

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
                try #require(bit / 8 + length <= bytes.count, "stored block past the end")
                out += bytes[(bit / 8)..<(bit / 8 + length)]
                bit += 8 * length
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
            let length = lengthBase[l] + (try bits(lengthExtra[l]))
            var d = 0
            for _ in 0..<5 { d = d << 1 | (try bits(1)) }
            let distance = distanceBase[d] + (try bits(distanceExtra[d]))
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
    for chunk in parts { #expect(chunk.crc == crc32(Array(chunk.type.utf8) + chunk.data), "CRC of \(chunk.type)") }
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
    @Test("chunk CRCs: the test's CRC-32 passes the standard check value, IEND's CRC is the known constant")
    func checksums() throws {
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        let file = PNGWriter.encode(image(width: 2, height: 2) { x, y, c in x + y + c })
        #expect(Array(file.suffix(12)) == [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82])
    }

    @Test("images round-trip through an independent decoder", arguments: [
        "noise", "gradient", "flat", "stripes", "1×1", "tall", "far repeats",
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
        case "tall": source = image(width: 3, height: 500) { _, y, c in (y * y + c) % 251 }
        default:
            // Rows of few-valued noise repeating every 60 rows (36 KB): the copies lie beyond the 32 KiB window.
            let rows = (0..<60).map { _ in (0..<600).map { _ in Int(rng.next() % 5) * 60 } }
            source = image(width: 200, height: 150) { x, y, c in rows[y % 60][x * 3 + c] }
        }
        let file = PNGWriter.encode(source)
        #expect(try decodePNG(file) == source)
        if kind == "flat" { #expect(file.count < 2_000, "a flat 300×200 image took \(file.count) bytes") }
    }

    @Test("incompressible images go into stored blocks, split at 65 535 bytes")
    func storedBlocks() throws {
        var rng = SplitMix64(seed: 13)
        let source = image(width: 200, height: 150) { _, _, _ in Int(truncatingIfNeeded: rng.next()) }
        let file = PNGWriter.encode(source)
        #expect(try decodePNG(file) == source)
        let idat = try chunks(file)[1].data
        let filtered = (200 * 3 + 1) * 150
        #expect(idat.count == 2 + filtered + 2 * 5 + 4, "IDAT of \(idat.count) bytes for \(filtered) filtered bytes")
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
