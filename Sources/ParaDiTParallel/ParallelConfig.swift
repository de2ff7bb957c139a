import ParaDiTDistributed

/// The degrees of the exact parallel methods: cfg splits the cond/uncond batch; ulysses × ring
/// (the sequence-parallel group, USP when both exceed 1) split the image tokens.
public struct ParallelConfig: Sendable, Equatable, CustomStringConvertible {
    public var cfg: Int
    public var ulysses: Int
    public var ring: Int

    public init(cfg: Int = 1, ulysses: Int = 1, ring: Int = 1) {
        (self.cfg, self.ulysses, self.ring) = (cfg, ulysses, ring)
    }

    public var worldSize: Int { cfg * ulysses * ring }
    /// Ranks that share one sample's tokens.
    public var sequenceDegree: Int { ulysses * ring }
    public var isSerial: Bool { worldSize == 1 }

    public var description: String {
        let parts = [("cfg", cfg), ("ulysses", ulysses), ("ring", ring)].filter { $0.1 > 1 }.map { "\($0.0)=\($0.1)" }
        return parts.isEmpty ? "serial" : parts.joined(separator: ",")
    }

    public func mesh(worldSize: Int, nodeOfRank: [Int]? = nil) throws -> Mesh {
        try Mesh(degrees: [.cfg: cfg, .ulysses: ulysses, .ring: ring], worldSize: worldSize, nodeOfRank: nodeOfRank)
    }

    /// What a model and its inputs must allow; checked on every rank before any compute.
    public struct Problem: Sendable {
        public var batch: Int
        public var heads: Int
        public var imageTokens: Int
        public var textTokens: Int
        public init(batch: Int, heads: Int, imageTokens: Int, textTokens: Int = 0) {
            (self.batch, self.heads, self.imageTokens, self.textTokens) = (batch, heads, imageTokens, textTokens)
        }
    }

    /// Refuses a configuration that cannot run, saying which degree to change.
    public func validate(_ p: Problem) throws {
        for (name, d) in [("cfg", cfg), ("ulysses", ulysses), ("ring", ring)] where d < 1 {
            throw ParallelError.unsupported("\(name)=\(d): every degree must be at least 1")
        }
        if p.batch % cfg != 0 {
            throw ParallelError.unsupported("cfg=\(cfg) splits the batch over \(cfg) ranks, but the batch has \(p.batch) "
                                            + "sample(s); use cfg=1 or a batch that is a multiple of \(cfg) (cond and uncond)")
        }
        if ulysses > p.heads {
            throw ParallelError.unsupported("ulysses=\(ulysses) exceeds the model's \(p.heads) attention heads; "
                                            + "use ulysses ≤ \(p.heads) and ring for the rest of the sequence degree")
        }
        if p.imageTokens < sequenceDegree {
            throw ParallelError.unsupported("the image has \(p.imageTokens) tokens, fewer than the \(sequenceDegree) "
                                            + "sequence-parallel ranks (ulysses × ring); lower ulysses or ring")
        }
    }
}

/// A parallel configuration or run that cannot work, with what to change.
public enum ParallelError: Error, CustomStringConvertible, Equatable {
    case unsupported(String)

    public var description: String {
        switch self {
        case let .unsupported(reason): return "--parallel: \(reason)"
        }
    }
}
