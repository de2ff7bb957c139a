import Foundation

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
    public init(batch: Int, tokens: Int, hidden: Int, heads: Int, layers: Int) {
        (self.batch, self.tokens, self.hidden, self.heads, self.layers) = (batch, tokens, hidden, heads, layers)
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
        let b = Double(s.batch / p.cfg), (tokens, hs) = (Double(s.tokens), Double(s.hidden))
        let (u, cols) = (Double(p.ulysses), Double(p.columns)), n = u * cols
        // Ranks are consecutive on hosts and ulysses is innermost: which axes cross hosts.
        let g = c.ranksPerNode
        let ulyssesCrosses = p.ulysses > g, columnsCross = p.ulysses * p.columns > g
        func link(_ crosses: Bool) -> (Double, Double) {
            crosses ? (c.interBytesPerSecond, c.interLatency) : (c.intraBytesPerSecond, c.intraLatency)
        }
        var exposed = 0.0, inter = 0.0
        if p.ulysses > 1 {
            let bytes = 4 * b * 4 * (u - 1) / u * tokens * hs / n
            let (bw, lat) = link(ulyssesCrosses)
            exposed += 2 * lat + bytes / bw
            if ulyssesCrosses { inter += bytes }
        }
        if p.columns > 1 {
            let (bw, lat) = link(columnsCross)
            // Attention of this rank's queries against one column's keys, per round.
            let roundCompute = 4 * b * (tokens / n) * (tokens / cols) * hs / u / c.attentionFlops
            if p.torus > 1 {
                let qkv = 4 * b * 3 * (tokens / cols) * hs / (u * cols), back = 4 * b * (cols - 1) * (tokens / cols) * hs / (u * cols)
                exposed += (cols - 1) * max(0, lat + qkv / bw - roundCompute) + lat + back / bw
                if columnsCross { inter += (cols - 1) * qkv + back }
            } else {
                let kv = 4 * b * 2 * (tokens / cols) * hs / u
                exposed += (cols - 1) * max(0, lat + kv / bw - roundCompute)
                if columnsCross { inter += (cols - 1) * kv }
            }
        }
        let layers = Double(s.layers)
        return Estimate(config: p, exposedSeconds: exposed * layers, interNodeBytes: inter * layers)
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
