import ParaDiTModels
import ParaDiTWeights

/// The bytes each rank must send in one forward pass by the attention exchanges (the USP paper's
/// volumes, 4 bytes a value, 2 under BF16 compute: `WireFormat`), for `tokens` tokens taking part
/// in attention (p), hidden width hs (heads · head dim) and `layers` attention layers run by the
/// rank (a PipeFusion stage's own); exact when p and the heads divide evenly.
/// - Ulysses: q, k, v and the output each cross an all-to-all, keeping 1/U: 4·(U−1)/U · p·hs/N.
/// - Ring: each rank's K and V travel R−1 hops; after Ulysses they hold hs/U of the width:
///   2·(R−1)/R · p·hs/U (the plain ring is U = 1).
/// - DistriFusion: each rank's K and V go to the N−1 others once per step: 2·(N−1)/N · p·hs.
/// - Torus across T nodes: a node's p/T rows cross once, q, k, v out and the output back, for the
///   (T−1)/T of its hs/U heads that others own: 4·(T−1)/T · (p/T)·hs/U (Ring: 2·(T−1)·(p/T)·hs/U).
/// - PipeFusion, per step and not per layer: a stage (not the last) hands every patch's hidden
///   states on once, its 1/S share under sequence parallelism S: p·hs/S (received as much: 2·p·hs
///   through each rank in total); the last stage returns the latents instead.
public struct CommVolume: Sendable, Equatable {
    public var ulyssesBytes: Int
    public var ringBytes: Int
    public var distrifusionBytes: Int
    public var torusBytes: Int
    /// Per step (all layers), by a stage other than the last.
    public var pipefusionBytes: Int

    public init(config: ParallelConfig, batch: Int, tokens p: Int, hidden hs: Int, layers: Int,
                compute: ComputeDType = .f32) {
        let (u, r, n) = (config.ulysses, config.ring, config.sequenceDegree)
        let bytes = WireFormat(compute: compute).bytesPerValue
        let perSample = batch / config.cfg * layers * bytes
        ulyssesBytes = perSample * 4 * (u - 1) * p * hs / (u * n)
        ringBytes = perSample * 2 * (r - 1) * p * hs / (r * u)
        let d = config.distrifusion
        distrifusionBytes = perSample * 2 * (d - 1) * p * hs / d
        let t = config.torus
        torusBytes = perSample * 4 * (t - 1) * p * hs / (t * t * u)
        pipefusionBytes = config.pipefusion > 1 ? batch / config.cfg * bytes * p * hs / n : 0
    }
}

extension CommVolume {
    /// The volumes of one forward pass of `problem` run by a rank holding `layers` of its
    /// attention layers (all of them unless it is a PipeFusion stage).
    public init(config: ParallelConfig, problem p: TransformerProblem, layers: Int? = nil,
                compute: ComputeDType = .f32) {
        let shards = SequenceShards(imageTokens: p.imageTokens, textTokens: p.jointTextTokens, degree: config.sequenceDegree,
                                    splitText: config.distrifusion == 1)
        self.init(config: config, batch: p.batch, tokens: shards.exchangedTokens, hidden: p.hidden,
                  layers: layers ?? p.attentionLayers, compute: compute)
    }
}
