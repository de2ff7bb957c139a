import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTTensor
import ParaDiTWeights

/// Rank 0's conditioning (or its failure) on every rank: a header of which tensors exist and
/// their shapes, then the tensors. A failure on rank 0 ends every rank with a one-line error.
public func shareConditioning(_ mine: Result<Conditioning, Error>?, over comm: Communicator) throws -> Conditioning {
    let own = try? mine?.get()
    let fields: [Tensor?] = own.map { c in
        [c.promptEmbeds, c.negativePromptEmbeds, c.promptAttentionMask, c.negativePromptAttentionMask,
         c.pooledPromptEmbeds, c.negativePooledPromptEmbeds]
    } ?? Array(repeating: nil, count: 6)
    // [ok, then per field: rank (0: absent) and 3 sizes].
    var values = [Float](repeating: 0, count: 25)
    if comm.rank == 0 {
        values[0] = own == nil ? 0 : 1
        for (i, t) in fields.enumerated() {
            guard let t else { continue }
            values[1 + 4 * i] = Float(t.rank)
            for (d, n) in t.shape.enumerated() { values[2 + 4 * i + d] = Float(n) }
        }
    }
    let header = Tensor(shape: [25], values: values)
    try comm.broadcast(header, root: 0)
    guard header.scalars[0] == 1 else {
        if case let .failure(error)? = mine { throw error }
        throw WeightsError.badInput(name: "prompt", reason: "rank 0 could not encode it (its error says why)")
    }
    let tensors: [Tensor?] = try (0..<6).map { i in
        let rank = Int(header.scalars[1 + 4 * i])
        guard rank > 0 else { return nil }
        let t = fields[i] ?? Tensor(uninitialized: (0..<rank).map { Int(header.scalars[2 + 4 * i + $0]) })
        try comm.broadcast(t, root: 0)
        return t
    }
    return Conditioning(promptEmbeds: tensors[0]!, negativePromptEmbeds: tensors[1], promptAttentionMask: tensors[2],
                        negativePromptAttentionMask: tensors[3], pooledPromptEmbeds: tensors[4],
                        negativePooledPromptEmbeds: tensors[5])
}
