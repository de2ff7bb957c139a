import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// A real architecture with random weights and the inputs of one denoising step: what
/// `paradit bench forward` and `bench parallel` time (benchmarks/torch_forward.py builds the same
/// configs in diffusers).
public struct ModelPreset: Sendable {
    public var name: String
    /// The config.json body as diffusers ships it for the architecture (without `_class_name`).
    public var config: String
    public var summary: String
    /// The forward() inputs, named as diffusers names them.
    public var inputs: @Sendable () -> [String: SafeTensorsValue]

    public init(name: String, config: String, summary: String, inputs: @escaping @Sendable () -> [String: SafeTensorsValue]) {
        (self.name, self.config, self.summary, self.inputs) = (name, config, summary, inputs)
    }
}

/// Everything the engine knows of one model class, registered once: how to build it from a
/// config and weights, which checkpoint keys belong to which block (a PipeFusion stage loads only
/// its own), how to read its forward() inputs from a file, and its benchmark presets. Code above
/// the models reaches a family only through this entry and `DiffusionTransformer`.
public struct ModelFamily: Sendable {
    /// The diffusers `_class_name`.
    public var className: String
    public var build: @Sendable (ConfigFile, Weights) throws -> any DiffusionTransformer
    /// Blocks in forward order of the model a config describes.
    public var blockCount: @Sendable (ConfigFile) throws -> Int
    /// For a config: the block (in forward order) a checkpoint key belongs to, nil for keys every
    /// stage needs.
    public var blockOfKey: @Sendable (ConfigFile) throws -> @Sendable (String) -> Int?
    /// Reads the forward() arguments from a file (`paradit forward --inputs`).
    public var readInputs: @Sendable (SafeTensorsFile) throws -> any TransformerInputs
    /// The `--inputs` names, for `paradit forward --help`.
    public var inputNames: String
    public var presets: [ModelPreset]

    public init(className: String, build: @escaping @Sendable (ConfigFile, Weights) throws -> any DiffusionTransformer,
                blockCount: @escaping @Sendable (ConfigFile) throws -> Int,
                blockOfKey: @escaping @Sendable (ConfigFile) throws -> @Sendable (String) -> Int?,
                readInputs: @escaping @Sendable (SafeTensorsFile) throws -> any TransformerInputs,
                inputNames: String, presets: [ModelPreset] = []) {
        (self.className, self.build, self.blockCount, self.blockOfKey) = (className, build, blockCount, blockOfKey)
        (self.readInputs, self.inputNames, self.presets) = (readInputs, inputNames, presets)
    }

    /// `blockOfKey` for checkpoints whose blocks are `prefix.N.…` numbered from `offset`.
    public static func numberedBlocks(_ prefixes: [(prefix: String, offset: Int)]) -> @Sendable (String) -> Int? {
        { key in
            let parts = key.split(separator: ".", maxSplits: 2)
            guard parts.count == 3, let i = Int(parts[1]) else { return nil }
            return prefixes.first { $0.prefix == parts[0] }.map { $0.offset + i }
        }
    }
}

/// The registry of model families by class name: the one place a class name becomes a model.
public enum ModelRegistry {
    private static let lock = NSLock()
    /// In registration order (the built-in families first).
    nonisolated(unsafe) private static var entries: [ModelFamily] = builtinModelFamilies

    /// Adds (or replaces) a family: a model defined outside this module gets every strategy.
    public static func register(_ family: ModelFamily) {
        lock.withLock {
            entries.removeAll { $0.className == family.className }
            entries.append(family)
        }
    }

    public static var families: [ModelFamily] {
        lock.withLock { entries }
    }

    public static var classNames: [String] { families.map(\.className) }

    /// The family of `className`, or an error listing the supported classes.
    public static func family(_ className: String, path: String = "config.json") throws -> ModelFamily {
        guard let family = families.first(where: { $0.className == className }) else {
            throw WeightsError.badConfig(path: path, reason: "\(className) is not supported (supported: \(classNames.joined(separator: ", ")))")
        }
        return family
    }

    /// The preset named `name` of any family, with its family.
    public static func preset(_ name: String) -> (ModelFamily, ModelPreset)? {
        for f in families { if let p = f.presets.first(where: { $0.name == name }) { return (f, p) } }
        return nil
    }

    /// Builds the model a config describes from weights (a checkpoint, or random weights).
    public static func build(config: ConfigFile, weights: Weights) throws -> any DiffusionTransformer {
        try family(config.className, path: config.path).build(config, weights)
    }

    /// Blocks of the model a config describes.
    public static func blockCount(config: ConfigFile) throws -> Int {
        try family(config.className, path: config.path).blockCount(config)
    }

    /// Opens a diffusers model folder strictly (every tensor read and shape-checked, none unused).
    public static func load(directory: String, weightsDType: WeightsDType = .stored,
                            compute: ComputeDType = .f32) throws
        -> any DiffusionTransformer {
        try load(directory: directory, keepingBlocks: nil, weightsDType: weightsDType, compute: compute).model
    }

    /// Opens a model folder as the class `M`, refusing a folder of another class before reading weights.
    public static func load<M: DiffusionTransformer>(directory: String, as type: M.Type) throws -> M {
        let file = try ConfigFile(directory: directory)
        let model = try load(directory: directory)
        guard let typed = model as? M else {
            throw WeightsError.badConfig(path: file.path, reason: "_class_name is \(file.className), expected \(M.self)")
        }
        return typed
    }

    /// Opens a model folder reading only the weights of the blocks `keep` (all when nil): a
    /// pipeline stage's share. The other blocks' weights are checked against the config but stand
    /// in as placeholders, so only blocks in `keep` may run. Also returns the parameters read and
    /// the model's total, and the bytes its linear weights keep resident.
    public static func load(directory: String, keepingBlocks keep: Range<Int>?, weightsDType: WeightsDType = .stored,
                            compute: ComputeDType = .f32)
        throws -> (model: any DiffusionTransformer, read: Int, total: Int, weightBytes: Int) {
        let file = try ConfigFile(directory: directory)
        let family = try family(file.className, path: file.path)
        let blockOf = try family.blockOfKey(file)
        let checkpoint = try Checkpoint(directory: directory)
        // The config's block count must match the checkpoint's before any block is built.
        let blocks = try family.blockCount(file), stored = (checkpoint.names.compactMap(blockOf).max() ?? -1) + 1
        guard blocks == stored else {
            throw WeightsError.badConfig(path: file.path, reason: "describes \(blocks) blocks, but the checkpoint holds \(stored)")
        }
        // INT8 and BF16 compute narrow the blocks only: the embedders and the output layers are a small
        // share of the weights and a large share of the error (docs/QUALITY.md), as quanto's Flux recipes
        // skip them.
        let weights = Weights(checkpoint: checkpoint, dtype: weightsDType, compute: compute,
                              quantizable: { blockOf($0) != nil }) { key in
            guard let keep, let block = blockOf(key) else { return false }
            return !keep.contains(block)
        }
        let model = try family.build(file, weights)
        try weights.checkAllUsed()
        return (model, weights.parameterCount - weights.skippedCount, weights.parameterCount, weights.matrixBytes)
    }
}
