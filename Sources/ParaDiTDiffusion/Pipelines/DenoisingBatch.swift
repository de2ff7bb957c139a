import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

/// Requests denoised together, joining and leaving at step boundaries (continuous batching). Each
/// keeps its own sampler — torch generator, scheduler state, step index — and the transformer gets
/// each sample's own timestep, so any scheduler allows a late join and every request gets the
/// latents it would get alone. Members share a `key`: the latent shape of one sample and the
/// guidance layout. Their inputs are laid out half by half ([first halves of every member; second
/// halves]) so that a CFG split still puts each guidance branch on its own rank.
public final class DenoisingBatch {
    final class Member {
        let id: Int
        let sampler: PatchSampler
        var step = 0
        init(id: Int, sampler: PatchSampler) { (self.id, self.sampler) = (id, sampler) }
    }

    /// A finished or failed member: its final latents (as `denoise` returns them) or its error.
    public struct Outcome {
        public let id: Int
        public let latents: Result<Tensor, Error>

        public init(id: Int, latents: Result<Tensor, Error>) { (self.id, self.latents) = (id, latents) }
    }

    var members: [Member] = []

    public init() {}

    public var ids: [Int] { members.map(\.id) }
    public var isEmpty: Bool { members.isEmpty }
    /// Images being denoised (the noise batch of every member).
    public var images: Int { members.reduce(0) { $0 + $1.sampler.images } }
    /// The key every member shares, nil while empty.
    public var key: [Int]? { members.first.map { Self.key(of: $0.sampler) } }

    /// What a sampler must share with the others to join: one sample's latent shape and the halves.
    public static func key(of sampler: PatchSampler) -> [Int] {
        Array(sampler.latents.shape.dropFirst()) + [sampler.batchHalves]
    }

    /// Adds a request at its first step.
    public func add(id: Int, sampler: PatchSampler) throws {
        if let key, key != Self.key(of: sampler) {
            throw WeightsError.badInput(name: "size",
                                        reason: "request \(id) cannot join a batch of another size or guidance")
        }
        check(!ids.contains(id), "DenoisingBatch.add: request \(id) is already in the batch")
        members.append(Member(id: id, sampler: sampler))
    }

    public func remove(_ id: Int) { members.removeAll { $0.id == id } }

    /// The transformer inputs of every member at its own step, half by half.
    public func inputs() -> any TransformerInputs {
        let own = members.map { $0.sampler.inputs(step: $0.step) }
        let halves = members[0].sampler.batchHalves
        let parts = (0..<halves).flatMap { h in
            own.map { inputs -> any TransformerInputs in
                let rows = inputs.batch / halves
                return inputs.samples((h * rows)..<((h + 1) * rows))
            }
        }
        return parts.count == 1 ? parts[0] : concatenated(parts)
    }

    /// Steps every member with its rows of `output` (the transformer's output for `inputs()`);
    /// returns and removes the members that finished or failed.
    public func step(_ output: Tensor) -> [Outcome] {
        let halves = members[0].sampler.batchHalves
        let rows = members.map { $0.sampler.inputRows / halves }
        let perHalf = rows.reduce(0, +)
        var offset = 0, done: [Outcome] = []
        for (member, n) in zip(members, rows) {
            let own = (0..<halves).map { h in output.rows((h * perHalf + offset)..<(h * perHalf + offset + n)) }
            offset += n
            do {
                try member.sampler.stepAll(step: member.step,
                                           output: own.count == 1 ? own[0] : concatenate(own, axis: 0))
                member.step += 1
                if member.step == member.sampler.timesteps.count {
                    done.append(Outcome(id: member.id, latents: .success(member.sampler.finalLatents)))
                }
            } catch {
                done.append(Outcome(id: member.id, latents: .failure(error)))
            }
        }
        members.removeAll { m in done.contains { $0.id == m.id } }
        return done
    }
}
