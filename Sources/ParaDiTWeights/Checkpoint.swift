import Foundation
import ParaDiTTensor

/// The weights of one diffusers model folder: a single `diffusion_pytorch_model.safetensors`, or
/// shards listed by `diffusion_pytorch_model.safetensors.index.json` (its "weight_map" gives each
/// tensor's file); transformers' folders (text encoders) name them `model.safetensors` alike.
public final class Checkpoint: @unchecked Sendable {
    public let directory: String
    /// Which open file holds each tensor.
    private let owner: [String: SafeTensorsFile]

    /// Opens the checkpoint in `directory`; `variant` selects e.g. `diffusion_pytorch_model.fp16.safetensors`.
    public init(directory: String, variant: String? = nil) throws {
        self.directory = directory
        let names = ["diffusion_pytorch_model", "model"].map { $0 + (variant.map { ".\($0)" } ?? "") + ".safetensors" }
        let paths = names.map { (directory as NSString).appendingPathComponent($0) }
        let single = paths.first { FileManager.default.fileExists(atPath: $0) || FileManager.default.fileExists(atPath: $0 + ".index.json") }
            ?? paths[0]
        let index = single + ".index.json"
        var owner: [String: SafeTensorsFile] = [:]
        if FileManager.default.fileExists(atPath: index) {
            for (name, file) in try Self.readIndex(index) {
                // Shards are files of this folder: a path out of it (or into a subfolder) is refused.
                guard !file.isEmpty, !file.contains("/"), file != ".", file != ".." else {
                    throw WeightsError.corrupt(path: index, reason: "weight_map puts '\(name)' in \(file), which is not a file of this folder")
                }
                let shardPath = (directory as NSString).appendingPathComponent(file)
                let shard = try owner.values.first { $0.path == shardPath } ?? SafeTensorsFile(path: shardPath)
                guard shard.entries[name] != nil else {
                    throw WeightsError.corrupt(path: index, reason: "weight_map puts '\(name)' in \(file), which does not have it")
                }
                owner[name] = shard
            }
        } else if FileManager.default.fileExists(atPath: single) {
            let file = try SafeTensorsFile(path: single)
            for name in file.entries.keys { owner[name] = file }
        } else {
            throw WeightsError.noCheckpoint(directory: directory)
        }
        self.owner = owner
    }

    /// A checkpoint over already-open files (tests, in-memory models).
    public init(files: [SafeTensorsFile], directory: String) {
        self.directory = directory
        var owner: [String: SafeTensorsFile] = [:]
        for f in files { for name in f.entries.keys { owner[name] = f } }
        self.owner = owner
    }

    static func readIndex(_ path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WeightsError.cannotOpen(path: path, reason: "unreadable")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let map = json["weight_map"] as? [String: String] else {
            throw WeightsError.corrupt(path: path, reason: "no \"weight_map\" object of tensor name → shard file")
        }
        return map
    }

    public var names: [String] { owner.keys.sorted() }

    public func entry(_ name: String) -> SafeTensorsEntry? { owner[name]?.entries[name] }

    /// The open file holding `name`.
    public func file(of name: String) -> SafeTensorsFile? { owner[name] }

    public func tensor(_ name: String) throws -> Tensor {
        guard let file = owner[name] else { throw WeightsError.missingTensor(key: name, file: directory) }
        return try file.tensor(name)
    }

    /// Counts of stored element types, e.g. ["BF16": 1234], for `paradit inspect`.
    public var dtypeCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for (name, file) in owner { counts[file.entries[name]!.dtype.rawValue, default: 0] += file.entries[name]!.count }
        return counts
    }
}
