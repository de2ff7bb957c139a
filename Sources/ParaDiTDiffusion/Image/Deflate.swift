// A small DEFLATE compressor (RFC 1951) for PNG without a zlib dependency: greedy LZ77 over a
// 32 KiB window with hash chains, coded in one block with the fixed Huffman codes, or stored
// when that does not pay. Plain deflate, so every PNG reader inflates it.

enum Deflate {
    static let window = 1 << 15
    static let minMatch = 3, maxMatch = 258
    /// Candidates tried per position: longer chains find slightly longer matches, slowly.
    static let maxChain = 48
    static let hashBits = 15

    /// Base length and extra bits of length codes 257…285.
    static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
                                    115, 131, 163, 195, 227, 258]
    static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    /// Base distance and extra bits of distance codes 0…29.
    static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
                                      1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11,
                                       12, 12, 13, 13]
    /// Code index for every match length 0…258 and distance 0…32768 (unused entries 0).
    static let lengthCode: [UInt8] = codeTable(bases: lengthBase, upTo: maxMatch)
    static let distanceCode: [UInt8] = codeTable(bases: distanceBase, upTo: window)

    static func codeTable(bases: [Int], upTo limit: Int) -> [UInt8] {
        var table = [UInt8](repeating: 0, count: limit + 1)
        for (code, base) in bases.enumerated() {
            for v in base...limit { table[v] = UInt8(code) }
        }
        return table
    }

    /// The fixed literal/length code of `symbol` (0…287): its bits reversed (deflate sends Huffman
    /// codes most significant bit first into an LSB-first stream) and its length.
    static let fixedCodes: [(bits: UInt32, count: Int)] = (0..<288).map { s in
        let (code, count) = s < 144 ? (0x30 + s, 8) : s < 256 ? (0x190 + s - 144, 9) : s < 280 ? (s - 256, 7) : (0xC0 + s - 280, 8)
        return (reversed(UInt32(code), count), count)
    }

    static func reversed(_ code: UInt32, _ count: Int) -> UInt32 {
        var out: UInt32 = 0
        for i in 0..<count where code & (1 << i) != 0 { out |= 1 << (count - 1 - i) }
        return out
    }

    /// The raw deflate stream of `data`: one fixed-Huffman block, or stored blocks when that is
    /// smaller (noise-like data, where 9-bit literal codes would expand it).
    static func compress(_ data: [UInt8]) -> [UInt8] {
        let coded = fixedHuffman(data)
        let storedSize = data.count + 5 * max(1, (data.count + 65534) / 65535)
        return coded.count <= storedSize ? coded : stored(data)
    }

    /// Stored blocks of at most 65 535 bytes: a byte holding BFINAL and BTYPE = 00, then LEN and
    /// its complement (little-endian), then the bytes.
    static func stored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        repeat {
            let end = min(data.count, start + 65535), length = UInt16(end - start)
            out.append(end == data.count ? 1 : 0)
            out += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)]
            out += data[start..<end]
            start = end
        } while start < data.count
        return out
    }

    /// One final block with the fixed Huffman codes, matches found by greedy LZ77.
    static func fixedHuffman(_ data: [UInt8]) -> [UInt8] {
        var out = BitWriter()
        out.write(0b011, count: 3)  // BFINAL = 1, BTYPE = 01 (fixed Huffman)
        data.withUnsafeBufferPointer { d in
            var head = [Int32](repeating: -1, count: 1 << hashBits)
            var prev = [Int32](repeating: -1, count: window)
            var i = 0
            while i < d.count {
                var best = 0, bestDistance = 0
                if i + minMatch <= d.count {
                    let h = hash(d, i)
                    var candidate = Int(head[h]), chain = maxChain
                    let limit = min(maxMatch, d.count - i)
                    while candidate >= 0 && i - candidate <= window && chain > 0 {
                        var n = 0
                        while n < limit && d[candidate + n] == d[i + n] { n += 1 }
                        if n > best { (best, bestDistance) = (n, i - candidate) }
                        if n == limit { break }
                        candidate = Int(prev[candidate & (window - 1)])
                        chain -= 1
                    }
                    (prev[i & (window - 1)], head[h]) = (head[h], Int32(i))
                }
                if best >= minMatch {
                    out.writeMatch(length: best, distance: bestDistance)
                    for j in (i + 1)..<(i + best) where j + minMatch <= d.count {
                        let h = hash(d, j)
                        (prev[j & (window - 1)], head[h]) = (head[h], Int32(j))
                    }
                    i += best
                } else {
                    out.writeSymbol(Int(d[i]))
                    i += 1
                }
            }
        }
        out.writeSymbol(256)
        return out.finish()
    }

    @inline(__always)
    static func hash(_ d: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        let v = UInt32(d[i]) | UInt32(d[i + 1]) << 8 | UInt32(d[i + 2]) << 16
        return Int((v &* 2_654_435_761) >> (32 - UInt32(hashBits)))
    }
}

/// Bits packed least significant first, as deflate stores them.
struct BitWriter {
    var bytes: [UInt8] = []
    var buffer: UInt64 = 0
    var pending = 0

    mutating func write(_ value: UInt32, count: Int) {
        buffer |= UInt64(value) << UInt64(pending)
        pending += count
        while pending >= 8 {
            bytes.append(UInt8(truncatingIfNeeded: buffer))
            buffer >>= 8
            pending -= 8
        }
    }

    mutating func writeSymbol(_ symbol: Int) {
        let code = Deflate.fixedCodes[symbol]
        write(code.bits, count: code.count)
    }

    /// A length (3…258) and distance (1…32768) pair: length code and extra bits, then the 5-bit
    /// fixed distance code and its extra bits.
    mutating func writeMatch(length: Int, distance: Int) {
        let l = Int(Deflate.lengthCode[length]), d = Int(Deflate.distanceCode[distance])
        writeSymbol(257 + l)
        write(UInt32(length - Deflate.lengthBase[l]), count: Deflate.lengthExtra[l])
        write(Deflate.reversed(UInt32(d), 5), count: 5)
        write(UInt32(distance - Deflate.distanceBase[d]), count: Deflate.distanceExtra[d])
    }

    /// The bytes, the last one padded with zero bits.
    mutating func finish() -> [UInt8] {
        if pending > 0 { bytes.append(UInt8(truncatingIfNeeded: buffer)) }
        (buffer, pending) = (0, 0)
        return bytes
    }
}
