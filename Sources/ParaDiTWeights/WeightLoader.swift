import ParaDiTTensor

/// Strict, scoped access to a checkpoint: the model's module tree mirrors the diffusers key tree,
/// so `weights.scope("transformer_blocks").scope(3).scope("attn").tensor("to_q.weight", shape: […])`
/// reads `transformer_blocks.3.attn.to_q.weight`. Every read is checked against the expected shape
/// and recorded; `checkAllUsed()` then reports tensors the model never asked for.
public struct Weights {
    final class Ledger {
        let checkpoint: Checkpoint
        var used: Set<String> = []
        init(checkpoint: Checkpoint) { self.checkpoint = checkpoint }
    }

    let ledger: Ledger
    public let prefix: String

    public init(checkpoint: Checkpoint) {
        ledger = Ledger(checkpoint: checkpoint)
        prefix = ""
    }

    private init(ledger: Ledger, prefix: String) {
        self.ledger = ledger
        self.prefix = prefix
    }

    /// The sub-module `name` (or list index).
    public func scope(_ name: String) -> Weights { Weights(ledger: ledger, prefix: key(name)) }
    public func scope(_ index: Int) -> Weights { scope(String(index)) }

    func key(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }

    /// Whether the checkpoint has `name` in this scope (for optional parts such as qk-norm).
    public func contains(_ name: String) -> Bool { ledger.checkpoint.entry(key(name)) != nil }

    /// The tensor `name` in this scope, which must have `shape`.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let full = key(name)
        guard let entry = ledger.checkpoint.entry(full) else {
            throw WeightsError.missingTensor(key: full, file: ledger.checkpoint.directory)
        }
        guard entry.shape == shape else { throw WeightsError.wrongShape(key: full, expected: shape, found: entry.shape) }
        ledger.used.insert(full)
        return try ledger.checkpoint.tensor(full)
    }

    /// The tensor `name` if the checkpoint has it, else nil.
    public func optionalTensor(_ name: String, shape: [Int]) throws -> Tensor? {
        contains(name) ? try tensor(name, shape: shape) : nil
    }

    /// Fails naming every tensor of the checkpoint that no module read.
    public func checkAllUsed() throws {
        let unused = ledger.checkpoint.names.filter { !ledger.used.contains($0) }
        if !unused.isEmpty { throw WeightsError.unusedTensors(keys: unused, file: ledger.checkpoint.directory) }
    }
}
