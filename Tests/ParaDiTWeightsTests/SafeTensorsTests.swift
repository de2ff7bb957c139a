import Foundation
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// A fresh temporary directory per test.
func temporaryDirectory() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-\(UUID())").path
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Builds a safetensors file from a raw header dictionary and payload bytes (for malformed cases).
func rawSafeTensors(header: Any, payload: [UInt8], declaredLength: UInt64? = nil) -> Data {
    let json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    var file = Data()
    withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian) { file.append(contentsOf: $0) }
    file.append(json)
    file.append(contentsOf: payload)
    return file
}

@Suite("safetensors reader")
struct SafeTensorsTests {
    @Test("F32 and I64 round-trip through the writer")
    func roundTrip() throws {
        let path = temporaryDirectory() + "/t.safetensors"
        let a = Tensor.randn([3, 5], seed: 1), scalar = Tensor(shape: [], values: [4.5])
        try writeSafeTensors(["a": .float(a), "s": .float(scalar), "ids": .int64([1, -2, 3], shape: [3])],
                             metadata: ["format": "pt"], to: path)
        let f = try SafeTensorsFile(path: path)
        #expect(f.names == ["a", "ids", "s"])
        #expect(f.metadata == ["format": "pt"])
        #expect(try f.tensor("a").scalars == a.scalars)
        #expect(try f.tensor("s").shape == [] && f.tensor("s").scalars == [4.5])
        #expect(try f.values("ids") == [1, -2, 3])
        #expect(throws: WeightsError.self) { try f.tensor("ids") }
        #expect(throws: WeightsError.missingTensor(key: "b", file: path)) { try f.tensor("b") }
    }

    @Test("F16 widening equals the bit-level decoding for every half value")
    func halfConversion() {
        let bits = (0...UInt16.max).map { $0 }
        let out = UnsafeMutablePointer<Float>.allocate(capacity: bits.count)
        defer { out.deallocate() }
        bits.withUnsafeBytes { convertHalfToFloat(count: bits.count, $0.baseAddress!, out) }
        for (i, b) in bits.enumerated() {
            let expected = halfToFloatReference(b)
            #expect(out[i] == expected || (out[i].isNaN && expected.isNaN), "half bits \(b)")
        }
    }

    @Test("F16 and BF16 tensors load as Float32")
    func halfTensors() throws {
        let values: [Float] = [0, 1, -2.5, 65504, 0.000061035156, 3.140625, -0.1, 7, 1e-3]
        let f16 = values.map { Float16($0).bitPattern }
        let bf16 = values.map { UInt16($0.bitPattern >> 16) }
        let payload = (f16 + bf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let header: [String: Any] = [
            "h": ["dtype": "F16", "shape": [3, 3], "data_offsets": [0, 18]],
            "b": ["dtype": "BF16", "shape": [9], "data_offsets": [18, 36]],
        ]
        let path = temporaryDirectory() + "/h.safetensors"
        try rawSafeTensors(header: header, payload: payload).write(to: URL(fileURLWithPath: path))
        let f = try SafeTensorsFile(path: path)
        #expect(try f.tensor("h").scalars == values.map { Float(Float16($0)) })
        #expect(try f.tensor("b").scalars == values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
    }

    static let malformed: [(String, Data)] = {
        let ok: [String: Any] = ["x": ["dtype": "F32", "shape": [2], "data_offsets": [0, 8]]]
        let payload = [UInt8](repeating: 0, count: 8)
        func entry(_ e: [String: Any]) -> [String: Any] { ["x": e] }
        return [
            ("shorter than 8 bytes", Data([1, 2, 3])),
            ("header length beyond the file", rawSafeTensors(header: ok, payload: payload, declaredLength: 10_000)),
            ("header length beyond 100 MB", rawSafeTensors(header: ok, payload: payload, declaredLength: UInt64.max)),
            ("header not JSON", { var d = rawSafeTensors(header: ok, payload: payload); d[8] = UInt8(ascii: "{"); d[9] = UInt8(ascii: "!"); return d }()),
            ("unknown dtype", rawSafeTensors(header: entry(["dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 8]]), payload: payload)),
            ("missing dtype", rawSafeTensors(header: entry(["shape": [2], "data_offsets": [0, 8]]), payload: payload)),
            ("negative shape", rawSafeTensors(header: entry(["dtype": "F32", "shape": [-2], "data_offsets": [0, 8]]), payload: payload)),
            ("fractional shape", rawSafeTensors(header: entry(["dtype": "F32", "shape": [1.5], "data_offsets": [0, 8]]), payload: payload)),
            ("offsets past the data", rawSafeTensors(header: entry(["dtype": "F32", "shape": [4], "data_offsets": [0, 16]]), payload: payload)),
            ("size does not match the offsets", rawSafeTensors(header: entry(["dtype": "F32", "shape": [3], "data_offsets": [0, 8]]), payload: payload)),
            ("overflowing shape", rawSafeTensors(header: entry(["dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 8]]), payload: payload)),
            ("overlapping tensors", rawSafeTensors(header: [
                "x": ["dtype": "F32", "shape": [2], "data_offsets": [0, 8]],
                "y": ["dtype": "F32", "shape": [1], "data_offsets": [4, 8]]], payload: payload)),
            ("a hole in the data", rawSafeTensors(header: entry(["dtype": "F32", "shape": [1], "data_offsets": [4, 8]]), payload: payload)),
            ("trailing bytes", rawSafeTensors(header: entry(["dtype": "F32", "shape": [1], "data_offsets": [0, 4]]), payload: payload)),
            ("bad metadata", rawSafeTensors(header: ["__metadata__": ["a": 1]], payload: [])),
            ("a name twice", text(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, payload)),
            ("garbage after the header", text(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x"#, payload)),
            ("a lone surrogate", text(#"{"\ud800":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, payload)),
            ("a bad escape", text(#"{"\q":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, payload)),
            ("a control character", text("{\"a\u{1}\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", payload)),
            ("nesting 100 deep", text(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":"# + String(repeating: "[", count: 100)
                                      + String(repeating: "]", count: 100) + "}}", payload)),
        ]
    }()

    /// A file whose header is exactly `json`.
    static func text(_ json: String, _ payload: [UInt8]) -> Data {
        var file = Data()
        withUnsafeBytes(of: UInt64(json.utf8.count).littleEndian) { file.append(contentsOf: $0) }
        return file + Data(json.utf8) + payload
    }

    @Test("the header reader decodes JSON escapes, skips unknown fields and accepts integral numbers as diffusers writes them")
    func headerJSON() throws {
        let json = #"{"__metadata__":{"format":"pt","n\u00e9":"\ud83d\ude00\n"}, "caf\u00e9" : {"dtype":"F32","shape":[2.0],"#
            + #""data_offsets":[0,8],"extra":[{"a":[true,false,null,-1.5e3]}]}}     "#
        let path = temporaryDirectory() + "/escapes.safetensors"
        try Self.text(json, [UInt8](repeating: 0, count: 8)).write(to: URL(fileURLWithPath: path))
        let f = try SafeTensorsFile(path: path)
        #expect(f.names == ["café"])
        #expect(f.metadata == ["format": "pt", "né": "😀\n"])
        #expect(f.entries["café"]?.shape == [2])
    }

    @Test("malformed files give a one-line error naming the problem", arguments: malformed.map(\.0))
    func malformedFile(name: String) throws {
        let data = Self.malformed.first { $0.0 == name }!.1
        let path = temporaryDirectory() + "/bad.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        do {
            _ = try SafeTensorsFile(path: path)
            Issue.record("\(name): accepted")
        } catch let error as WeightsError {
            let message = error.description
            #expect(message.contains(path) && !message.contains("\n"), "\(name): \(message)")
            guard case .corrupt = error else { Issue.record("\(name): \(error) is not .corrupt"); return }
        }
    }

    @Test("a missing file names the path")
    func missingFile() {
        #expect(throws: WeightsError.cannotOpen(path: "/nonexistent/x.safetensors", reason: "No such file or directory")) {
            try SafeTensorsFile(path: "/nonexistent/x.safetensors")
        }
    }

    @Test("fuzz: thousands of mutated and truncated headers never crash")
    func fuzzHeaders() throws {
        let dir = temporaryDirectory()
        let original = dir + "/ok.safetensors"
        try writeSafeTensors(["w": .float(Tensor.randn([4, 3], seed: 2)), "b": .float(Tensor.randn([4], seed: 3)),
                              "ids": .int64([1, 2], shape: [2])], to: original)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: original)))
        let headerEnd = 8 + Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var rng = SplitMix64(seed: 42)
        let path = dir + "/fuzz.safetensors"
        var accepted = 0, rejected = 0
        let interesting = Array("{}[]\":,0123456789-.eE FIBU_".utf8)
        for iteration in 0..<3000 {
            var m = bytes
            switch iteration % 4 {
            case 0:  // random bytes anywhere in the header, length field included
                for _ in 0..<Int.random(in: 1...4, using: &rng) { m[Int.random(in: 0..<headerEnd, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            case 1:  // JSON-significant characters inside the header
                for _ in 0..<Int.random(in: 1...3, using: &rng) { m[Int.random(in: 8..<headerEnd, using: &rng)] = interesting.randomElement(using: &rng)! }
            case 2:  // truncation
                m = Array(m.prefix(Int.random(in: 0..<m.count, using: &rng)))
            default:  // digits changed: shapes and offsets that lie
                let digits = (8..<headerEnd).filter { (48...57).contains(m[$0]) }
                for _ in 0..<2 { m[digits.randomElement(using: &rng)!] = UInt8.random(in: 48...57, using: &rng) }
            }
            try Data(m).write(to: URL(fileURLWithPath: path))
            do {
                let f = try SafeTensorsFile(path: path)
                // Whatever parses must also read back without crashing.
                for name in f.names { _ = try f.values(name) }
                accepted += 1
            } catch is WeightsError {
                rejected += 1
            }
        }
        #expect(accepted + rejected == 3000)
        #expect(rejected > 1000, "mutations should mostly be caught, rejected \(rejected)")
    }
}
