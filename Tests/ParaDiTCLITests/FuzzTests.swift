import Foundation
import ParaDiTCLI
import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights
import Testing

// Seeded mutation fuzzing of everything a user's file or flag reaches first: the safetensors header
// parser, config.json decoding into every model family and scheduler, and `--parallel` with the
// options planned against it. A crash kills the test process; an error must be one line.
// CI runs a smoke; `PARADIT_FUZZ=full swift test -c release --filter Fuzz` runs the counts in
// docs/QUALITY.md (≥ 100,000 headers, ≥ 10,000 configs and specs).

private let full = ProcessInfo.processInfo.environment["PARADIT_FUZZ"] == "full"
/// `PARADIT_FUZZ_LAST=path` keeps each input there before it is tried: after a crash, the culprit.
private let lastInputPath = ProcessInfo.processInfo.environment["PARADIT_FUZZ_LAST"]

private func keep(_ input: @autoclosure () -> Data) {
    if let lastInputPath { try? input().write(to: URL(fileURLWithPath: lastInputPath)) }
}

/// Byte-level mutations that reach parser edge cases: flips, JSON punctuation, extreme numbers,
/// deletions, duplicated spans (deep nesting, repeated keys) and truncation.
struct Mutator {
    var rng: SplitMix64
    static let punctuation = Array("{}[]\":,0123456789-.eE \\u/ntfa".utf8)
    static let numbers = ["0", "-1", "1e308", "99999999999999999999", "4294967297", "2147483648", "1.5", "-0",
                          "1e-9", "9007199254740993", "NaN", "Infinity", "null", "\"7\"", "[]", "{}", "true"]
        .map { Array($0.utf8) }

    mutating func mutate(_ input: [UInt8], protectPrefix: Int = 0) -> [UInt8] {
        var m = input
        for _ in 0..<Int.random(in: 1...3, using: &rng) where m.count > protectPrefix {
            let at = Int.random(in: protectPrefix..<m.count, using: &rng)
            switch Int.random(in: 0..<7, using: &rng) {
            case 0: m[at] = UInt8.random(in: 0...255, using: &rng)
            case 1: m[at] = Self.punctuation.randomElement(using: &rng)!
            case 2:  // a number (or any value) replaced by an extreme one
                var end = at
                while end < m.count, (48...57).contains(m[end]) || m[end] == UInt8(ascii: "-") { end += 1 }
                m.replaceSubrange(at..<end, with: Self.numbers.randomElement(using: &rng)!)
            case 3: m.removeSubrange(at..<min(m.count, at + Int.random(in: 1...16, using: &rng)))
            case 4:  // a span duplicated in place: repeated keys, deeper nesting
                let span = m[at..<min(m.count, at + Int.random(in: 1...64, using: &rng))]
                let copies = Int.random(in: 1...40, using: &rng)
                m.insert(contentsOf: Array(repeating: span, count: copies).joined(), at: at)
            case 5: m = Array(m.prefix(at))
            default:
                let depth = Int.random(in: 1...5000, using: &rng)
                m.insert(contentsOf: Array(repeating: UInt8(ascii: "["), count: depth), at: at)
            }
        }
        return m
    }
}

@Suite("Fuzz: headers, configs and parallel specs never crash; errors are one line", .serialized)
struct FuzzTests {
    static let modelFixtures = ["dit-b2", "pixart-alpha-b2-8x12", "sd3-b2-8x12", "flux-schnell-b2-3x5"]

    @Test("safetensors headers")
    func headers() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-fuzz-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeSafeTensors(["w": .float(Tensor.randn([4, 3], seed: 2)), "b": .float(Tensor.randn([4], seed: 3)),
                              "ids": .int64([1, 2], shape: [2])],
                             metadata: ["format": "pt", "note": "a\\\"b\u{e9}"], to: dir + "/s.safetensors")
        let seeds = try ([dir + "/s.safetensors"] + Self.modelFixtures.map(Self.weights)).map {
            try Data(contentsOf: URL(fileURLWithPath: $0))
        }
        var mutator = Mutator(rng: SplitMix64(seed: 1))
        let runs = full ? 100_000 : 20_000
        var accepted = 0
        for i in 0..<runs {
            var bytes = [UInt8](seeds[i % seeds.count])
            let headerEnd = 8 + Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            // Mutate the header and keep the length field true to it, so most inputs reach the JSON.
            var header = mutator.mutate(Array(bytes[8..<headerEnd]))
            if i % 10 == 0 { header = mutator.mutate(header) }
            let length = i % 7 == 0 ? UInt64.random(in: 0...UInt64(header.count + 8), using: &mutator.rng)
                : UInt64(header.count)
            bytes = withUnsafeBytes(of: length.littleEndian, Array.init) + header + bytes[headerEnd...]
            keep(Data(bytes))
            do {
                let parsed = try bytes.withUnsafeBytes { try SafeTensorsFile.parseHeader($0, path: "fuzz") }
                for e in parsed.entries.values { #expect(e.offset >= 8 && e.offset + e.byteCount <= bytes.count) }
                accepted += 1
            } catch let error as WeightsError {
                #expect(!"\(error)".contains("\n"))
            }
        }
        print("fuzz: \(runs) safetensors headers, \(accepted) accepted, \(runs - accepted) refused")
        #expect(accepted > 0 && accepted < runs)
    }

    @Test("config.json of every model family and scheduler")
    func configs() throws {
        var mutator = Mutator(rng: SplitMix64(seed: 2))
        // A model folder per family whose config.json is rewritten each time, beside its weights.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-fuzz-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for fixture in Self.modelFixtures {
            try FileManager.default.createDirectory(atPath: "\(root)/\(fixture)", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: "\(root)/\(fixture)/diffusion_pytorch_model.safetensors",
                                                       withDestinationPath: Self.weights(fixture))
        }
        let runs = full ? 10_000 : 2_000
        var accepted = 0
        for i in 0..<runs {
            let isModel = i % 2 == 0, fixture = Self.modelFixtures[i % 4]
            let source = isModel ? "\(fixtureRoot)/\(fixture)/model/config.json"
                : "\(pipelineRoot)/\(Self.pipelines[i % 4])/pipeline/scheduler/scheduler_config.json"
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
            // Half the inputs stay valid JSON with one key's value made extreme: the semantic checks.
            let data = (i % 4 < 2 ? Self.extremeValue(in: original, using: &mutator.rng) : nil)
                ?? Data(mutator.mutate(original))
            keep(Data("\(source)\n".utf8) + data)
            do {
                if isModel {
                    try data.write(to: URL(fileURLWithPath: "\(root)/\(fixture)/config.json"))
                    _ = try ModelRegistry.load(directory: "\(root)/\(fixture)")
                } else {
                    var scheduler = try makeScheduler(config: ConfigFile(data: data, path: "scheduler_config.json"))
                    try scheduler.setTimesteps(Int.random(in: 1...60, using: &mutator.rng), mu: nil)
                }
                accepted += 1
            } catch {
                let message = ParaDiTCommand.message(for: error)
                #expect(!message.isEmpty && !message.contains("\n"), "\(message)")
            }
        }
        print("fuzz: \(runs) configs, \(accepted) accepted, \(runs - accepted) refused")
        #expect(accepted < runs)
    }

    /// The config with one key's value made extreme; nil for files Foundation cannot read (PixArt's
    /// scheduler writes -Infinity, which the engine's reader accepts and Foundation's does not).
    static func extremeValue(in json: [UInt8], using rng: inout SplitMix64) -> Data? {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(json))) as? [String: Any] else { return nil }
        let extremes: [Any] = [0, -1, 1_000_000_000, 1 << 31, 1 << 62, 1.5, -1e300, "x", NSNull(), [Any](), [3, -1],
                               ["a": 1], true, String(repeating: "y", count: 10_000)]
        let key = object.keys.sorted().randomElement(using: &rng)!
        object[key] = extremes.randomElement(using: &rng)!
        return try! JSONSerialization.data(withJSONObject: object)
    }

    static let pipelines = ["dit", "pixart", "sd3", "flux"]

    static func weights(_ fixture: String) -> String {
        "\(fixtureRoot)/\(fixture)/model/diffusion_pytorch_model.safetensors"
    }

    @Test("--parallel with --stage-blocks, --patches, --warmup-steps and --world, planned against a model")
    func parallelSpecs() throws {
        var mutator = Mutator(rng: SplitMix64(seed: 3))
        let output = FileManager.default.temporaryDirectory
            .appendingPathComponent("paradit-fuzz-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let runs = full ? 10_000 : 1_000
        var accepted = 0
        for i in 0..<runs {
            let (spec, extra) = Self.randomOptions(&mutator)
            let fixture = i % 3 == 0 ? "flux-schnell-b2-3x5" : "dit-b2"
            keep(Data("\(fixture) --parallel \(spec) \(extra.joined(separator: " "))".utf8))
            let message = runCommand(["forward", "--model", "\(fixtureRoot)/\(fixture)/model",
                                      "--inputs", "\(fixtureRoot)/\(fixture)/inputs.safetensors", "--output", output,
                                      "--parallel", spec] + extra)
            // The engine's own words are one line; a value it quotes may hold the mutation's newline.
            let own = ([spec] + extra).reduce(message ?? "") { $0.replacingOccurrences(of: $1, with: "") }
            if let message {
                #expect(!message.isEmpty && !own.contains("\n"), "\(spec) \(extra): \(message)")
            } else {
                accepted += 1
            }
        }
        print("fuzz: \(runs) parallel specs, \(accepted) accepted, \(runs - accepted) refused")
        #expect(accepted > 0 && accepted < runs)
    }
}

extension FuzzTests {
    static let methods = ["cfg", "ulysses", "ring", "pipefusion", "distrifusion", "torus"]
    static let degrees = ["1", "2", "3", "4", "8", "0", "-1", "65537", "4294967296", "9223372036854775807"]

    /// A `--parallel` spec from the grammar (methods with small, zero, negative or huge degrees),
    /// often mutated, and some of the options planned with it.
    static func randomOptions(_ mutator: inout Mutator) -> (spec: String, extra: [String]) {
        func mutated(_ s: String) -> String { String(decoding: mutator.mutate(Array(s.utf8)), as: UTF8.self) }
        var parts = methods.filter { _ in Int.random(in: 0..<4, using: &mutator.rng) == 0 }.map {
            "\($0)=\(Int.random(in: 0..<3, using: &mutator.rng) == 0 ? degrees.randomElement(using: &mutator.rng)! : "2")"
        }
        if Bool.random(using: &mutator.rng) && parts.isEmpty {
            parts = [["auto", "serial"].randomElement(using: &mutator.rng)!]
        }
        if Int.random(in: 0..<6, using: &mutator.rng) == 0 { parts.append("one-sided") }
        var spec = parts.joined(separator: ",")
        if Int.random(in: 0..<3, using: &mutator.rng) == 0 { spec = mutated(spec) }
        var extra: [String] = []
        for option in ["--stage-blocks", "--patches", "--warmup-steps", "--world"]
        where Int.random(in: 0..<5, using: &mutator.rng) == 0 {
            let value = option == "--stage-blocks" ? ["1,1", "2", "1,1,1", "0,2", "5,5"].randomElement(using: &mutator.rng)!
                : degrees.randomElement(using: &mutator.rng)!
            extra += [option, Bool.random(using: &mutator.rng) ? value : mutated(value)]
        }
        return (spec, extra)
    }
}
