import Foundation
import ParaDiTCLI
import ParaDiTTensor
import ParaDiTWeights
import Testing

let fixtureRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("ParaDiTModelsTests/Fixtures").path

/// A copy of a fixture's model folder whose tensors are edited by `edit` before being written back.
func editedModel(_ fixture: String, _ edit: (inout [String: SafeTensorsValue]) throws -> Void) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-model-\(UUID())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let source = "\(fixtureRoot)/\(fixture)/model"
    try FileManager.default.copyItem(atPath: "\(source)/config.json", toPath: "\(dir)/config.json")
    let file = try SafeTensorsFile(path: "\(source)/diffusion_pytorch_model.safetensors")
    var tensors: [String: SafeTensorsValue] = [:]
    for name in file.names { tensors[name] = .float(try file.tensor(name)) }
    try edit(&tensors)
    try writeSafeTensors(tensors, to: "\(dir)/diffusion_pytorch_model.safetensors")
    return dir
}

/// Runs `paradit` with `args`; returns the error message, or nil when it succeeded.
func runCommand(_ args: [String]) -> String? {
    do {
        var command = try ParaDiTCommand.parseAsRoot(args)
        try command.run()
        return nil
    } catch {
        return ParaDiTCommand.message(for: error)
    }
}

@Suite("paradit forward and inspect")
struct ForwardCommandTests {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-out-\(UUID()).safetensors").path

    func forward(model: String, fixture: String = "dit-b2") -> String? {
        runCommand(["forward", "--model", model, "--inputs", "\(fixtureRoot)/\(fixture)/inputs.safetensors", "--output", output])
    }

    @Test("writes diffusers' output for every model class", arguments: ["dit-b2", "pixart-alpha-b2-8x12", "sd3-b2-8x12", "flux-schnell-b2-3x5"])
    func writesSample(fixture: String) throws {
        #expect(forward(model: "\(fixtureRoot)/\(fixture)/model", fixture: fixture) == nil)
        let got = try SafeTensorsFile(path: output).tensor("sample")
        let expected = try SafeTensorsFile(path: "\(fixtureRoot)/\(fixture)/output.safetensors").tensor("sample")
        #expect(got.shape == expected.shape)
        #expect(zip(got.scalars, expected.scalars).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
    }

    /// Each broken checkpoint gives a one-line error that names the problem.
    @Test("broken checkpoints are refused with one line naming the problem", arguments: [
        ("missing", "transformer_blocks.1.ff.net.2.bias"),
        ("unused", "extra.weight"),
        ("wrong shape", "proj_out_2.weight"),
    ])
    func brokenCheckpoint(kind: String, key: String) throws {
        let model = try editedModel("dit-b2") { tensors in
            switch kind {
            case "missing": tensors[key] = nil
            case "unused": tensors[key] = .float(Tensor(zeros: [2]))
            default: tensors[key] = .float(Tensor(zeros: [3, 3]))
            }
        }
        let message = try #require(forward(model: model))
        #expect(message.contains(key) && !message.contains("\n"), "\(kind): \(message)")
    }

    /// A NaN in a query or key weight reaches every score of a head; PyTorch gives NaN, and so must
    /// the engine (its softmax maxima skipped NaN and the output was finite but wrong).
    @Test("a NaN weight in to_q or to_k is a NaN output, refused naming it", arguments: ["attn1.to_q.weight", "attn1.to_k.weight"])
    func nanWeight(key: String) throws {
        let model = try editedModel("dit-b2") { tensors in
            guard case .float(let w)? = tensors["transformer_blocks.0.\(key)"] else { return }
            let poisoned = w.copy()
            poisoned.data[0] = .nan
            tensors["transformer_blocks.0.\(key)"] = .float(poisoned)
        }
        let message = forward(model: model) ?? "accepted"
        #expect(message.contains("not finite") && !message.contains("\n"), "\(key): \(message)")
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    /// These hung (the planner enumerating 2^63 ranks; an emulated link sleeping 10^6 s per message).
    @Test("absurd rank options are refused before any rank starts", arguments: [
        (["--parallel", "auto", "--world", "9223372036854775807"], "--world must be 1...65536"),
        (["--parallel", "ring=2", "--emulate-nodes", "2", "--inter-node-latency-us", "1e12"], "--inter-node-latency-us 0...1000000"),
        (["--parallel", "ring=2", "--emulate-nodes", "2", "--inter-node-gbps", "nan"], "--inter-node-gbps a positive number"),
        (["--parallel", "ring=2", "--threads", "0"], "--threads must be 1...4096"),
    ])
    func absurdRankOptions(args: [String], expected: String) {
        let start = Date()
        let message = runCommand(["forward", "--model", "\(fixtureRoot)/dit-b2/model", "--inputs", "\(fixtureRoot)/dit-b2/inputs.safetensors",
                                  "--output", output] + args) ?? "accepted"
        #expect(message.contains(expected), "\(args): \(message)")
        #expect(Date().timeIntervalSince(start) < 5)
    }

    /// Foundation's JSON objects made this 6.5 GB of memory (35 s); the header reader keeps only
    /// the entries. 1.66 M zero-size tensors, run under a 2 GB address-space limit.
    @Test("a legal 99 MB safetensors header is read within 2 GB of memory")
    func hugeHeader() throws {
        let model = try editedModel("dit-b2") { _ in }
        var header = "{"
        header.reserveCapacity(100_000_000)
        for i in 0..<1_660_000 { header += "\(i == 0 ? "" : ",")\"t\(i + 1_000_000)\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}" }
        header += "}"
        var file = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(Data(header.utf8))
        #expect(file.count > 99_000_000 && file.count < 100_000_000)
        try file.write(to: URL(fileURLWithPath: "\(model)/diffusion_pytorch_model.safetensors"))
        let (status, output) = try runParadit(["inspect", "--model", model], addressSpaceKB: 2_000_000)
        #expect(status == 1 && output.contains("the checkpoint holds 0"), "\(output)")
    }

    @Test("truncated and lying files are refused, never a crash", arguments: ["truncated", "lying"])
    func corruptFile(kind: String) throws {
        let model = try editedModel("dit-b2") { _ in }
        let path = "\(model)/diffusion_pytorch_model.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        if kind == "truncated" {
            bytes = bytes.prefix(bytes.count - 100)
        } else if let range = bytes.range(of: Data("data_offsets\":[0,".utf8)) {
            bytes.replaceSubrange(range, with: Data("data_offsets\":[8,".utf8))
        }
        try bytes.write(to: URL(fileURLWithPath: path))
        let message = try #require(forward(model: model))
        #expect(message.contains("not a valid safetensors file") && !message.contains("\n"), "\(kind): \(message)")
    }

    @Test("wrong inputs name the input", arguments: [("flux-schnell-b2-3x5", "hidden_states"), ("pixart-alpha-b2-8x12", "class_labels")])
    func wrongInputs(fixture: String, mentions: String) {
        // DiT given Flux's packed latents; DiT given PixArt inputs without class labels.
        let message = forward(model: "\(fixtureRoot)/dit-b2/model", fixture: fixture)
        #expect(message?.contains(mentions) == true, "\(message ?? "accepted")")
    }

    @Test("inspect names the class and counts parameters")
    func inspect() {
        #expect(runCommand(["inspect", "--model", "\(fixtureRoot)/flux-dev-b1-bf16/model"]) == nil)
        #expect(runCommand(["inspect", "--model", "/nonexistent"])?.contains("config.json") == true)
    }
}
