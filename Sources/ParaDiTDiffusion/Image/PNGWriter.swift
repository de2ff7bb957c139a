import Foundation

/// Why an image file could not be written.
public enum ImageError: Error, CustomStringConvertible, Equatable {
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotWrite(path, reason): return "cannot write \(path): \(reason)"
        }
    }
}

/// 8-bit RGB PNG files: signature, IHDR, one IDAT holding a zlib stream, IEND. Each scanline
/// takes the PNG filter with the smallest sum of absolute byte values (the usual heuristic), and
/// the stream is compressed with `Deflate`.
public enum PNGWriter {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// The PNG file of `image`.
    public static func encode(_ image: RGBImage) -> [UInt8] {
        var header: [UInt8] = []
        appendBigEndian(UInt32(image.width), to: &header)
        appendBigEndian(UInt32(image.height), to: &header)
        header += [8, 2, 0, 0, 0]  // 8 bits per sample, truecolour, deflate, adaptive filtering, no interlace
        var file = signature
        appendChunk("IHDR", header, to: &file)
        appendChunk("IDAT", zlib(filtered(image)), to: &file)
        appendChunk("IEND", [], to: &file)
        return file
    }

    /// Writes `image` to `path` as PNG.
    public static func write(_ image: RGBImage, to path: String) throws {
        do {
            // Written beside the target and renamed into place: a reader never sees a partial file.
            try Data(encode(image)).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ImageError.cannotWrite(path: path, reason: error.localizedDescription)
        }
    }

    static func appendChunk(_ type: String, _ data: [UInt8], to file: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &file)
        let body = Array(type.utf8) + data
        file += body
        appendBigEndian(crc32(body), to: &file)
    }

    static func appendBigEndian(_ v: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    /// A zlib stream (RFC 1950): header 78 01 (deflate, 32 KiB window), deflate data, Adler-32.
    static func zlib(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01] + Deflate.compress(data)
        appendBigEndian(adler32(data), to: &out)
        return out
    }

    /// The scanlines, each prefixed by its filter type (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth).
    static func filtered(_ image: RGBImage) -> [UInt8] {
        let stride = image.width * 3
        var out = [UInt8]()
        out.reserveCapacity((stride + 1) * image.height)
        var candidates = [[UInt8]](repeating: [UInt8](repeating: 0, count: stride), count: 5)
        image.pixels.withUnsafeBufferPointer { px in
            for y in 0..<image.height {
                let row = y * stride
                for i in 0..<stride {
                    let x = px[row + i]
                    let a = i >= 3 ? px[row + i - 3] : 0, b = y > 0 ? px[row - stride + i] : 0
                    let c = i >= 3 && y > 0 ? px[row - stride + i - 3] : 0
                    candidates[0][i] = x
                    candidates[1][i] = x &- a
                    candidates[2][i] = x &- b
                    candidates[3][i] = x &- UInt8((Int(a) + Int(b)) / 2)
                    candidates[4][i] = x &- paeth(a, b, c)
                }
                let cost = candidates.map { $0.reduce(0) { $0 + abs(Int(Int8(bitPattern: $1))) } }
                let best = cost.indices.min { cost[$0] < cost[$1] }!
                out.append(UInt8(best))
                out += candidates[best]
            }
        }
        return out
    }

    /// The PNG Paeth predictor: whichever of left, up and upper-left is closest to left + up − upper-left.
    @inline(__always)
    static func paeth(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 {
        let p = Int(a) + Int(b) - Int(c)
        let pa = abs(p - Int(a)), pb = abs(p - Int(b)), pc = abs(p - Int(c))
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
    }

    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (ISO 3309, as PNG uses it) of `bytes`.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes { c = crcTable[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// Adler-32 of `bytes`; sums reduced every 5552 bytes, the most that cannot overflow 32 bits.
    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0, i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + 5552)
            while i < end { a += UInt32(bytes[i]); b += a; i += 1 }
            (a, b) = (a % 65521, b % 65521)
        }
        return b << 16 | a
    }
}
