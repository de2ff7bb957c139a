import ParaDiTDistributed
import ParaDiTModels

/// The degrees of the parallel methods: cfg splits the cond/uncond batch; ulysses × ring (the
/// sequence-parallel group, USP when both exceed 1) split the image tokens exactly; distrifusion
/// splits them into patches that see each other's K/V one step late; pipefusion cuts the blocks
/// into stages and the image into patches that flow through them, one step stale.
public struct ParallelConfig: Sendable, Equatable, CustomStringConvertible {
    public var cfg: Int
    public var ulysses: Int
    public var ring: Int
    public var distrifusion: Int
    /// Torus attention across this many nodes (in place of ring), Ulysses inside each.
    public var torus: Int
    /// PipeFusion's pipeline stages.
    public var pipefusion: Int
    /// PipeFusion's patches per image (nil: one per stage).
    public var patches: Int?
    /// Blocks of each stage (nil: an even split).
    public var stageBlocks: [Int]?
    /// Ring and torus pass K/V by one-sided notified puts into the peers' windows instead of
    /// matched send/recv (`--one-sided`).
    public var oneSided = false

    public init(cfg: Int = 1, ulysses: Int = 1, ring: Int = 1, distrifusion: Int = 1, torus: Int = 1,
                pipefusion: Int = 1, patches: Int? = nil, stageBlocks: [Int]? = nil) {
        (self.cfg, self.ulysses, self.ring, self.distrifusion, self.torus) = (cfg, ulysses, ring, distrifusion, torus)
        (self.pipefusion, self.patches, self.stageBlocks) = (pipefusion, patches, stageBlocks)
    }

    public var worldSize: Int { cfg * pipefusion * sequenceDegree }
    /// PipeFusion's patch count.
    public var patchCount: Int { patches ?? pipefusion }
    /// Ranks that share one sample's tokens.
    public var sequenceDegree: Int { ulysses * columns * distrifusion }
    /// The inter-node axis of sequence parallelism: ring or torus (one of them is 1).
    public var columns: Int { ring * torus }
    public var isSerial: Bool { worldSize == 1 }

    public var description: String {
        var parts = [("cfg", cfg), ("pipefusion", pipefusion), ("ulysses", ulysses), ("ring", ring), ("torus", torus), ("distrifusion", distrifusion)]
            .filter { $0.1 > 1 }.map { "\($0.0)=\($0.1)" }
        if pipefusion > 1 && patchCount != pipefusion { parts.append("patches=\(patchCount)") }
        return parts.isEmpty ? "serial" : parts.joined(separator: ",") + (oneSided ? ",one-sided" : "")
    }

    /// Torus and DistriFusion take the ring axis of the mesh (none of the three is combined).
    public func mesh(worldSize: Int, nodeOfRank: [Int]? = nil) throws -> Mesh {
        try Mesh(degrees: [.cfg: cfg, .pipefusion: pipefusion, .ulysses: ulysses, .ring: ring * torus * distrifusion],
                 worldSize: worldSize, nodeOfRank: nodeOfRank)
    }

    /// Refuses a configuration that cannot run, saying which degree to change.
    public func validate(_ p: TransformerProblem) throws {
        for (name, d) in [("cfg", cfg), ("ulysses", ulysses), ("ring", ring), ("torus", torus), ("distrifusion", distrifusion),
                          ("pipefusion", pipefusion), ("patches", patchCount)] where d < 1 {
            throw ParallelError.unsupported("\(name)=\(d): every degree must be at least 1")
        }
        if pipefusion > 1 && distrifusion * torus > 1 {
            throw ParallelError.unsupported("pipefusion=\(pipefusion) combines with cfg, ulysses and ring, not with distrifusion or torus")
        }
        if distrifusion > 1 && ulysses * columns > 1 {
            throw ParallelError.unsupported("distrifusion=\(distrifusion) cannot be combined with ulysses, ring or torus; use one of them (with cfg)")
        }
        if oneSided && columns == 1 {
            throw ParallelError.unsupported("one-sided communication serves ring and torus; this configuration has neither")
        }
        if pipefusion > 1 && p.grid.frames > 1 {
            throw ParallelError.unsupported("pipefusion=\(pipefusion) cuts one image into bands of rows; a video of \(p.grid.frames) "
                                            + "latent frames is not supported: use cfg, ulysses, ring or torus")
        }
        if torus > 1 && ring > 1 {
            throw ParallelError.unsupported("torus=\(torus) replaces ring across nodes; use one of them")
        }
        if p.batch % cfg != 0 {
            throw ParallelError.unsupported("cfg=\(cfg) splits the batch over \(cfg) ranks, but the batch has \(p.batch) "
                                            + "sample(s); use cfg=1 or a batch that is a multiple of \(cfg) (cond and uncond)")
        }
        if ulysses > p.heads {
            throw ParallelError.unsupported("ulysses=\(ulysses) exceeds the model's \(p.heads) attention heads; "
                                            + "use ulysses ≤ \(p.heads) and ring for the rest of the sequence degree")
        }
        if ulysses * torus > p.heads {
            throw ParallelError.unsupported("ulysses=\(ulysses) × torus=\(torus) splits the heads \(ulysses * torus) ways, but the model has \(p.heads); "
                                            + "lower one of them")
        }
        if p.imageTokens < sequenceDegree {
            throw ParallelError.unsupported("the image has \(p.imageTokens) tokens, fewer than the \(sequenceDegree) "
                                            + "sequence-parallel ranks (ulysses × ring × distrifusion); lower ulysses, ring or distrifusion")
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
