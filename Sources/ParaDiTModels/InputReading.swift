import ParaDiTTensor
import ParaDiTWeights

// Readers shared by the families' forward-input parsers (`ModelFamily.readInputs`).

/// A per-sample input: one value per batch item, or a scalar broadcast to all.
func perSample(_ file: SafeTensorsFile, _ name: String, batch: Int) throws -> [Double] {
    guard file.entries[name] != nil else { throw WeightsError.badInput(name: name, reason: "missing from \(file.path)") }
    let values = try file.values(name)
    if values.count == 1 { return Array(repeating: values[0], count: batch) }
    guard values.count == batch else {
        throw WeightsError.badInput(name: name, reason: "has shape \(file.entries[name]!.shape), expected one value per sample (\(batch)) or one for all")
    }
    return values
}

/// A latent input [B, C, H, W].
func latent(_ file: SafeTensorsFile, _ name: String) throws -> Tensor {
    let t = try file.tensor(name)
    guard t.rank == 4 else { throw WeightsError.badInput(name: name, reason: "has shape \(t.shape), expected a latent [B, C, H, W]") }
    return t
}

/// A float input of the given rank whose first dimension is the batch.
func batched(_ file: SafeTensorsFile, _ name: String, batch: Int, rank: Int) throws -> Tensor {
    let t = try file.tensor(name)
    guard t.rank == rank, t.size(0) == batch else {
        throw WeightsError.badInput(name: name, reason: "has shape \(t.shape), expected \(rank) dimensions, the first the batch (\(batch))")
    }
    return t
}

/// Fails unless `size` is `expected`, naming the input and its dimension.
func expectDim(_ name: String, _ what: String, _ size: Int, _ expected: Int) throws {
    guard size == expected else { throw WeightsError.badInput(name: name, reason: "has \(size) \(what), the model expects \(expected)") }
}
