import ParaDiTTensor

/// Strict, scoped access to a checkpoint: the model's module tree mirrors the diffusers key tree,
/// so `weights.scope("transformer_blocks").scope(3).scope("attn").tensor("to_q.weight", shape: […])`
/// reads `transformer_blocks.3.attn.to_q.weight`. Every read is checked against the expected shape
/// and recorded; `checkAllUsed()` then reports tensors the model never asked for.
public struct Weights {
    final class Ledger {
        /// nil: random weights (benchmarks of real architectures without downloading them).
        let checkpoint: Checkpoint?
        let seed: UInt64
        let std: Float
        var used: Set<String> = []
        var elements = 0, skippedElements = 0
        /// Tensors not to read (placeholders instead): weights a pipeline stage never uses.
        let skip: (String) -> Bool
        /// The element type linear weights are held in.
        let dtype: WeightsDType
        /// What the linear layers compute in.
        let compute: ComputeDType
        /// Linear weights INT8 may quantize and BF16 compute may narrow; the others keep their stored
        /// precision and compute in Float32.
        let quantizable: (String) -> Bool
        /// Bytes of the linear weights held (after conversion).
        var matrixBytes = 0
        init(checkpoint: Checkpoint?, seed: UInt64 = 0, std: Float = 0.02, dtype: WeightsDType = .stored,
             compute: ComputeDType = .f32, quantizable: @escaping (String) -> Bool = { _ in true },
             skip: @escaping (String) -> Bool = { _ in false }) {
            if let refusal = compute.refusal(weights: dtype) { check(false, refusal) }
            self.checkpoint = checkpoint
            self.seed = seed
            self.std = std
            self.dtype = dtype
            self.compute = compute
            self.quantizable = quantizable
            self.skip = skip
        }
    }

    let ledger: Ledger
    public let prefix: String

    /// Reads `checkpoint`; tensors whose key `skipping` accepts are checked but not read, and
    /// stand in as placeholders that own no memory. Under INT8 or BF16 compute, linear weights
    /// `quantizable` rejects keep their stored precision and Float32 compute (a transformer's layers
    /// outside its numbered blocks).
    public init(checkpoint: Checkpoint, dtype: WeightsDType = .stored, compute: ComputeDType = .f32,
                quantizable: @escaping (String) -> Bool = { _ in true },
                skipping: @escaping (String) -> Bool = { _ in false }) {
        ledger = Ledger(checkpoint: checkpoint, dtype: dtype, compute: compute, quantizable: quantizable,
                        skip: skipping)
        prefix = ""
    }

    /// Random weights of whatever shape the model asks for (uniform with standard deviation `std`),
    /// for timing real architectures without their checkpoints and for parity tests with strong
    /// signals (a larger std). Deterministic for a seed and key.
    public init(randomSeed: UInt64, std: Float = 0.02, dtype: WeightsDType = .stored, compute: ComputeDType = .f32,
                quantizable: @escaping (String) -> Bool = { _ in true }) {
        ledger = Ledger(checkpoint: nil, seed: randomSeed, std: std, dtype: dtype, compute: compute,
                        quantizable: quantizable)
        prefix = ""
    }

    private init(ledger: Ledger, prefix: String) {
        self.ledger = ledger
        self.prefix = prefix
    }

    /// The sub-module `name` (or list index).
    public func scope(_ name: String) -> Weights { Weights(ledger: ledger, prefix: key(name)) }
    /// What the linear layers read through these weights compute in (`--dtype`).
    public var compute: ComputeDType { ledger.compute }
    public func scope(_ index: Int) -> Weights { scope(String(index)) }

    func key(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }

    /// Whether the checkpoint has `name` in this scope (for optional parts such as qk-norm).
    public func contains(_ name: String) -> Bool { ledger.checkpoint.map { $0.entry(key(name)) != nil } ?? true }

    /// Elements of every tensor handed out so far: the model's parameter count once it is built.
    public var parameterCount: Int { ledger.elements }
    /// Elements of the tensors skipped (placeholders) among them.
    public var skippedCount: Int { ledger.skippedElements }

    /// The tensor `name` in this scope, which must have `shape`.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let full = key(name)
        ledger.elements += shape.reduce(1, *)
        guard let checkpoint = ledger.checkpoint else {
            var hash = ledger.seed
            for byte in full.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
            let bound = ledger.std * Float(3).squareRoot()
            return Tensor.uniform(shape, in: -bound...bound, seed: hash)
        }
        guard let entry = checkpoint.entry(full) else {
            throw WeightsError.missingTensor(key: full, file: checkpoint.directory)
        }
        guard entry.shape == shape else { throw WeightsError.wrongShape(key: full, expected: shape, found: entry.shape) }
        ledger.used.insert(full)
        if ledger.skip(full) {
            ledger.skippedElements += entry.count
            return .placeholder(shape)
        }
        // Float32 tensors are used where the file maps them: no anonymous copy, and ranks on one
        // host share the page cache.
        return try checkpoint.file(of: full)?.mappedTensor(full) ?? checkpoint.tensor(full)
    }

    /// The linear weight `name` [out, in], held as `--weights-dtype` asks: BF16/F16 stored weights
    /// in place in the mapped file under `stored`; converted once (one tensor at a time) otherwise.
    public func matrix(_ name: String, shape: [Int]) throws -> WeightMatrix {
        let full = key(name), entry = ledger.checkpoint?.entry(full)
        let target: WeightElement
        // BF16 compute narrows the blocks' linears; the edges, as under INT8, keep Float32 compute
        // (they halve every fixture's BF16 error for well under 1 % of a real model's weights).
        let bf16 = ledger.compute == .bf16 && ledger.quantizable(full)
        let dtype = bf16 ? .bf16 : ledger.dtype.isInt8 && !ledger.quantizable(full) ? .stored : ledger.dtype
        switch (dtype, entry?.dtype) {
        case (.stored, .bf16?): target = .bf16
        case (.stored, .f16?): target = .f16
        case (.stored, _), (.f32, _): target = .f32
        case (.bf16, _): target = .bf16
        case (.f16, _): target = .f16
        case (.int8, _), (.int8Dynamic, _): target = .int8
        }
        let compute: LinearCompute = dtype == .int8Dynamic ? .int8 : bf16 ? .bf16 : .f32
        if target == .f32 || ledger.skip(full) {
            let dense = try tensor(name, shape: shape)
            if !dense.isPlaceholder { ledger.matrixBytes += dense.count * 4 }
            return WeightMatrix(dense: dense)
        }
        if let entry, let file = ledger.checkpoint?.file(of: full), entry.dtype.rawValue.lowercased() == target.rawValue {
            guard entry.shape == shape else { throw WeightsError.wrongShape(key: full, expected: shape, found: entry.shape) }
            (ledger.elements, ledger.matrixBytes) = (ledger.elements + entry.count, ledger.matrixBytes + entry.byteCount)
            ledger.used.insert(full)
            return WeightMatrix(rows: shape[0], columns: shape[1], element: target, base: try file.bytes(full),
                                owner: file, compute: compute)
        }
        let wide = try tensor(name, shape: shape)
        let (bytes, scales) = withExtendedLifetime(wide) { narrowed(wide.data, count: wide.count, columns: shape[1], to: target) }
        let buffer = ByteBuffer(bytes)
        let matrix = WeightMatrix(rows: shape[0], columns: shape[1], element: target, base: buffer.base, owner: buffer,
                                  scales: scales.map { Tensor(shape: [shape[0]], values: $0) },
                                  compute: compute)
        ledger.matrixBytes += matrix.residentBytes
        return matrix
    }

    /// Bytes the linear weights read so far keep resident.
    public var matrixBytes: Int { ledger.matrixBytes }

    /// The tensor `name` if the checkpoint has it, else nil.
    public func optionalTensor(_ name: String, shape: [Int]) throws -> Tensor? {
        contains(name) ? try tensor(name, shape: shape) : nil
    }

    /// Fails naming every tensor of the checkpoint that no module read (but those `ignoring`
    /// accepts: buffers such as transformers' position ids that hold nothing to learn).
    public func checkAllUsed(ignoring: (String) -> Bool = { _ in false }) throws {
        guard let checkpoint = ledger.checkpoint else { return }
        let unused = checkpoint.names.filter { !ledger.used.contains($0) && !ignoring($0) }
        if !unused.isEmpty { throw WeightsError.unusedTensors(keys: unused, file: checkpoint.directory) }
    }
}
