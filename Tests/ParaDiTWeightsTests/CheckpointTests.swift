import Foundation
import ParaDiTTensor
import ParaDiTWeights
import Testing

@Suite("Checkpoints, strict loading and configs")
struct CheckpointTests {
    /// A two-shard checkpoint with an index, as diffusers saves large models.
    func shardedCheckpoint() throws -> String {
        let dir = temporaryDirectory()
        try writeSafeTensors(["blocks.0.weight": .float(Tensor.randn([2, 3], seed: 1))],
                             to: dir + "/diffusion_pytorch_model-00001-of-00002.safetensors")
        try writeSafeTensors(["blocks.1.weight": .float(Tensor.randn([2, 3], seed: 2)), "proj.bias": .float(Tensor.randn([2], seed: 3))],
                             to: dir + "/diffusion_pytorch_model-00002-of-00002.safetensors")
        let index: [String: Any] = ["metadata": ["total_size": 56], "weight_map": [
            "blocks.0.weight": "diffusion_pytorch_model-00001-of-00002.safetensors",
            "blocks.1.weight": "diffusion_pytorch_model-00002-of-00002.safetensors",
            "proj.bias": "diffusion_pytorch_model-00002-of-00002.safetensors"]]
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: dir + "/diffusion_pytorch_model.safetensors.index.json"))
        return dir
    }

    @Test("sharded checkpoints resolve every tensor through the index")
    func sharded() throws {
        let ckpt = try Checkpoint(directory: try shardedCheckpoint())
        #expect(ckpt.names == ["blocks.0.weight", "blocks.1.weight", "proj.bias"])
        #expect(try ckpt.tensor("blocks.1.weight").scalars == Tensor.randn([2, 3], seed: 2).scalars)
        #expect(ckpt.dtypeCounts == ["F32": 14])
    }

    @Test("an index pointing at the wrong shard is refused")
    func badIndex() throws {
        let dir = try shardedCheckpoint()
        let index: [String: Any] = ["weight_map": ["proj.bias": "diffusion_pytorch_model-00001-of-00002.safetensors"]]
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: dir + "/diffusion_pytorch_model.safetensors.index.json"))
        #expect(throws: WeightsError.self) { try Checkpoint(directory: dir) }
    }

    @Test("an index naming a shard outside the model folder is refused, naming it", arguments: [
        "../outside.safetensors", "../../x.safetensors", "/etc/passwd", "sub/shard.safetensors", "..", "",
    ])
    func shardOutsideFolder(file: String) throws {
        let dir = try shardedCheckpoint()
        // A real shard outside the folder: reading it must not be what stops the load.
        try writeSafeTensors(["proj.bias": .float(Tensor.randn([2], seed: 3))], to: dir + "/../outside.safetensors")
        defer { try? FileManager.default.removeItem(atPath: dir + "/../outside.safetensors") }
        let index: [String: Any] = ["weight_map": ["proj.bias": file]]
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: dir + "/diffusion_pytorch_model.safetensors.index.json"))
        do {
            _ = try Checkpoint(directory: dir)
            Issue.record("accepted shard \(file)")
        } catch {
            #expect("\(error)".contains("not a file of this folder"), "\(error)")
        }
    }

    /// F32 weights are read where the file maps them; BF16 ones, held as stored, too (as a narrow
    /// matrix); converted ones are copies.
    @Test("F32 and stored BF16 weights are the mapped file's bytes, not copies")
    func zeroCopy() throws {
        let dir = temporaryDirectory()
        let w = Tensor.randn([4, 6], seed: 1)
        try writeSafeTensors(["a.weight": .float(w)], to: dir + "/diffusion_pytorch_model.safetensors")
        let checkpoint = try Checkpoint(directory: dir)
        let file = try #require(checkpoint.file(of: "a.weight"))
        let mapped = try Weights(checkpoint: checkpoint).scope("a").tensor("weight", shape: [4, 6])
        #expect(UnsafeRawPointer(mapped.data) == (try file.bytes("a.weight")))
        #expect(mapped.scalars == w.scalars)
        let narrowed = try Weights(checkpoint: checkpoint, dtype: .bf16).scope("a").matrix("weight", shape: [4, 6])
        #expect(narrowed.element == .bf16 && narrowed.residentBytes == 48)
    }

    @Test("a folder without weights says what it looked for")
    func noWeights() {
        let dir = temporaryDirectory()
        #expect(throws: WeightsError.noCheckpoint(directory: dir)) { try Checkpoint(directory: dir) }
    }

    @Test("scoped loading: keys mirror the module tree; missing, mis-shaped and unused tensors are errors")
    func strictLoading() throws {
        let dir = try shardedCheckpoint()
        let weights = Weights(checkpoint: try Checkpoint(directory: dir))
        let blocks = weights.scope("blocks")
        #expect(try blocks.scope(0).tensor("weight", shape: [2, 3]).shape == [2, 3])
        #expect(throws: WeightsError.wrongShape(key: "blocks.1.weight", expected: [3, 2], found: [2, 3])) {
            try blocks.scope(1).tensor("weight", shape: [3, 2])
        }
        #expect(throws: WeightsError.missingTensor(key: "blocks.2.weight", file: dir)) {
            try blocks.scope(2).tensor("weight", shape: [2, 3])
        }
        #expect(try weights.scope("proj").optionalTensor("weight", shape: [2, 2]) == nil)
        #expect(throws: WeightsError.unusedTensors(keys: ["blocks.1.weight", "proj.bias"], file: dir)) { try weights.checkAllUsed() }
        _ = try blocks.scope(1).tensor("weight", shape: [2, 3])
        _ = try weights.scope("proj").tensor("bias", shape: [2])
        try weights.checkAllUsed()
    }

    struct ToyConfig: Decodable {
        var numLayers: Int
        var attentionHeadDim: Int
        var outChannels: Int?
        var normEps: Double
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            numLayers = try c.value(.numLayers, default: 28)
            attentionHeadDim = try c.value(.attentionHeadDim, default: 72)
            outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels)
            normEps = try c.value(.normEps, default: 1e-5)
        }
        enum CodingKeys: String, CodingKey { case numLayers, attentionHeadDim, outChannels, normEps }
    }

    @Test("config.json: snake_case keys, diffusers defaults for absent or null keys, errors name the key")
    func configs() throws {
        let dir = temporaryDirectory()
        let path = dir + "/config.json"
        try #"{"_class_name": "Toy", "_diffusers_version": "0.42.1", "num_layers": 2, "out_channels": null}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let file = try ConfigFile(directory: dir)
        #expect(file.className == "Toy")
        let config = try file.decode(ToyConfig.self)
        #expect(config.numLayers == 2 && config.attentionHeadDim == 72 && config.outChannels == nil && config.normEps == 1e-5)
        try #"{"_class_name": "Toy", "attention_head_dim": "big"}"#.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigFile(directory: dir).decode(ToyConfig.self)
            Issue.record("a string head dim was accepted")
        } catch let error as WeightsError {
            #expect(error.description.contains("\"attention_head_dim\""), "\(error)")
        }
        try #"{"num_layers": 2}"#.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: WeightsError.self) { try ConfigFile(directory: dir) }
    }
}
