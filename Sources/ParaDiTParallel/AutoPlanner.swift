import Foundation
import ParaDiTModels
import ParaDiTWeights

/// What the planner knows of the cluster: how many ranks on how many hosts, and the two link
/// classes (measured with `paradit bench comm`, or declared); `attentionFlops` is one rank's
/// attention speed (from `paradit bench kernels`), to weigh communication against compute.
public struct ClusterModel: Sendable {
    public var worldSize: Int, nodes: Int
    public var interBytesPerSecond: Double, interLatency: Double
    public var intraBytesPerSecond: Double, intraLatency: Double
    public var attentionFlops: Double

    public init(worldSize: Int, nodes: Int, interGbps: Double, interLatency: Double,
                intraBytesPerSecond: Double = 2.5e9, intraLatency: Double = 50e-6, attentionFlops: Double = 40e9) {
        (self.worldSize, self.nodes) = (worldSize, nodes)
        (self.interBytesPerSecond, self.interLatency) = (interGbps * 1e9 / 8, interLatency)
        (self.intraBytesPerSecond, self.intraLatency, self.attentionFlops) = (intraBytesPerSecond, intraLatency, attentionFlops)
    }

    var ranksPerNode: Int { worldSize / nodes }
}

/// The shape of one denoising step as the planner needs it.
public struct StepShape: Sendable {
    public var batch: Int, tokens: Int, hidden: Int, heads: Int, layers: Int
    /// Bytes an activation takes between ranks: 4, or 2 under BF16 compute (`WireFormat`).
    public var bytesPerValue: Int
    public init(batch: Int, tokens: Int, hidden: Int, heads: Int, layers: Int, compute: ComputeDType = .f32) {
        (self.batch, self.tokens, self.hidden, self.heads, self.layers) = (batch, tokens, hidden, heads, layers)
        bytesPerValue = WireFormat(compute: compute).bytesPerValue
    }

    /// The step of a forward pass: every image and joint text token takes part in attention.
    public init(_ p: TransformerProblem, compute: ComputeDType = .f32) {
        self.init(batch: p.batch, tokens: p.imageTokens + p.jointTextTokens, hidden: p.hidden, heads: p.heads,
                  layers: p.attentionLayers, compute: compute)
    }
}

/// `--parallel auto`: a cost model of the attention exchanges per layer — bytes on each link class,
/// and how much of each transfer hides behind compute — ranks the placements that fit the world
/// and the model, and picks the cheapest. Work is split evenly by every candidate, so only the
/// exposed communication differs between them.
public enum AutoPlanner {
    public struct Estimate: Sendable {
        public var config: ParallelConfig
        /// Seconds per step the ranks wait for attention exchanges (not hidden by compute).
        public var exposedSeconds: Double
        /// Bytes per rank and step over the slow (inter-node) links.
        public var interNodeBytes: Double
    }

    /// Every exact configuration of the world that the model allows, cheapest first; among equally
    /// exposed ones (all hidden, say), the one putting fewer bytes on the slow links, which leaves
    /// them to everything else and is the safer bet when compute turns out faster than modelled.
    public static func rank(_ shape: StepShape, _ cluster: ClusterModel) -> [Estimate] {
        candidates(shape, cluster).map { estimate($0, shape, cluster) }.sorted {
            ($0.exposedSeconds, $0.interNodeBytes) < ($1.exposedSeconds, $1.interNodeBytes)
        }
    }

    static func candidates(_ s: StepShape, _ c: ClusterModel) -> [ParallelConfig] {
        var out: [ParallelConfig] = []
        for cfg in [1, 2] where s.batch % cfg == 0 && c.worldSize % cfg == 0 {
            let n = c.worldSize / cfg
            var u = 1
            while u <= n {
                if n % u == 0 {
                    let r = n / u
                    if u <= s.heads { out.append(ParallelConfig(cfg: cfg, ulysses: u, ring: r)) }
                    if r > 1 && u * r <= s.heads { out.append(ParallelConfig(cfg: cfg, ulysses: u, torus: r)) }
                }
                u *= 2
            }
        }
        return out.filter { $0.sequenceDegree <= s.tokens }
    }

    /// Exposed seconds and slow-link bytes of one configuration, per step.
    public static func estimate(_ p: ParallelConfig, _ s: StepShape, _ c: ClusterModel) -> Estimate {
        let b = Double(s.batch / p.cfg), (tokens, hs) = (Double(s.tokens), Double(s.hidden)),
            size = Double(s.bytesPerValue)
        let (u, cols) = (Double(p.ulysses), Double(p.columns)), n = u * cols
        var exposed = 0.0, inter = 0.0
        if p.ulysses > 1 {
            // Each of the u − 1 peers gets an equal share; the shares to other hosts and to this
            // host's ranks travel at once, each on its own link.
            let bytes = size * b * 4 * (u - 1) / u * tokens * hs / n
            let remote = Double(remotePeers(size: p.ulysses, stride: 1, c)) / (u - 1) * bytes
            exposed += 2 * (remote > 0 ? c.interLatency : c.intraLatency)
                + max(remote / c.interBytesPerSecond, (bytes - remote) / c.intraBytesPerSecond)
            inter += remote
        }
        if p.columns > 1 {
            // After Ulysses a rank holds tokens/cols query rows at width hs/u; attention of those
            // rows against one column's keys is what a ring round hides behind.
            let blockAttention = 4 * b * (tokens / cols) * (tokens / cols) * hs / u / c.attentionFlops
            let remote = remotePeers(size: p.columns, stride: p.ulysses, c)
            let cost = p.torus > 1
                ? torus(p, b: b, tokens: tokens, hs: hs, size: size, remoteRounds: remote, blockAttention, c)
                : ring(p, b: b, tokens: tokens, hs: hs, size: size, crosses: remote > 0, blockAttention, c)
            exposed += cost.exposed
            inter += cost.inter
        }
        let layers = Double(s.layers)
        return Estimate(config: p, exposedSeconds: exposed * layers, interNodeBytes: inter * layers)
    }

    /// Of a rank's `size − 1` peers along an axis whose members are `stride` ranks apart, how many
    /// are on other hosts (ranks are consecutive on hosts).
    static func remotePeers(size: Int, stride: Int, _ c: ClusterModel) -> Int {
        size - max(1, min(size, c.ranksPerNode / stride))
    }

    /// Ring: the K/V relay moves in lockstep, so one hop across hosts sets every round's pace;
    /// each round's transfer hides behind attention on the block already present.
    static func ring(_ p: ParallelConfig, b: Double, tokens: Double, hs: Double, size: Double, crosses: Bool,
                     _ blockAttention: Double, _ c: ClusterModel) -> (exposed: Double, inter: Double) {
        let (bw, lat) = crosses ? (c.interBytesPerSecond, c.interLatency) : (c.intraBytesPerSecond, c.intraLatency)
        let rounds = Double(p.columns - 1), kv = size * b * 2 * (tokens / Double(p.columns)) * hs / Double(p.ulysses)
        return (rounds * max(0, lat + kv / bw - blockAttention), crosses ? rounds * kv : 0)
    }

    /// Torus: the heads are split once more over the columns, so a block's attention is 1/cols of
    /// a ring block's. Round s's q/k/v (s = 1…cols−1) are in flight while the rank merges block
    /// s−1 both ways, 2s−1 block-attentions (a quarter of the work at 2 columns, where Ring's one
    /// round hides behind half); the rounds go at the pace of the slowest pair, and the outputs'
    /// return, `remoteRounds` of its blocks across hosts, hides behind nothing.
    static func torus(_ p: ParallelConfig, b: Double, tokens: Double, hs: Double, size: Double, remoteRounds: Int,
                      _ blockAttention: Double, _ c: ClusterModel) -> (exposed: Double, inter: Double) {
        let (u, cols) = (Double(p.ulysses), Double(p.columns))
        let block = size * b * (tokens / cols) * hs / (u * cols), qkv = 3 * block
        let (bw, lat) = remoteRounds > 0 ? (c.interBytesPerSecond, c.interLatency) : (c.intraBytesPerSecond, c.intraLatency)
        let unit = blockAttention / cols
        let hidden = (1..<p.columns).reduce(0.0) { $0 + max(0, lat + qkv / bw - Double(2 * $1 - 1) * unit) }
        let (remote, local) = (Double(remoteRounds), cols - 1 - Double(remoteRounds))
        let back = lat + max(remote * block / c.interBytesPerSecond, local * block / c.intraBytesPerSecond)
        return (hidden + back, remote * (qkv + block))
    }

    /// A table of the ranking, for `--parallel auto` to print why it chose.
    public static func explain(_ ranking: [Estimate]) -> String {
        var lines = ["--parallel auto: estimated exposed attention communication per step (cheapest first)"]
        for (i, e) in ranking.enumerated() {
            let name = e.config.description.padding(toLength: 24, withPad: " ", startingAt: 0)
            lines.append((i == 0 ? "  → " : "    ") + name
                         + String(format: "%9.3f s exposed, %8.1f MB/rank over inter-node links", e.exposedSeconds, e.interNodeBytes / 1e6))
        }
        return lines.joined(separator: "\n")
    }
}
