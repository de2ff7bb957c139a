/// The axes of parallelism, innermost first: consecutive ranks differ in their Ulysses
/// coordinate, then ring, pipefusion, cfg and data (xDiT's layout), so the bandwidth-hungriest
/// axis (Ulysses' all-to-all) lands on neighbouring ranks, which share a node.
public enum MeshAxis: String, CaseIterable, Sendable {
    case ulysses, ring, pipefusion, cfg, data
}

/// Degrees of each axis over a world, with the node of every rank.
public struct Mesh: Sendable, Equatable {
    public let degrees: [MeshAxis: Int]
    public let worldSize: Int
    /// nodeOfRank[r]: which host rank r runs on (all 0 on one machine).
    public let nodeOfRank: [Int]

    /// Refuses degrees that do not multiply to the world size, with the same message on every rank.
    public init(degrees: [MeshAxis: Int], worldSize: Int, nodeOfRank: [Int]? = nil) throws {
        for (axis, d) in degrees where d < 1 {
            throw CommError.badArgument(operation: "mesh", reason: "\(axis.rawValue) degree must be at least 1, got \(d)")
        }
        let product = MeshAxis.allCases.reduce(1) { $0 * (degrees[$1] ?? 1) }
        guard product == worldSize else {
            let spec = MeshAxis.allCases.compactMap { a in degrees[a].map { "\(a.rawValue)=\($0)" } }.joined(separator: ",")
            throw CommError.badArgument(operation: "mesh", reason: "degrees \(spec.isEmpty ? "(none)" : spec) multiply to \(product), but the world has \(worldSize) ranks")
        }
        let nodes = nodeOfRank ?? Array(repeating: 0, count: worldSize)
        guard nodes.count == worldSize else {
            throw CommError.badArgument(operation: "mesh", reason: "\(nodes.count) node assignments for \(worldSize) ranks")
        }
        self.degrees = degrees
        self.worldSize = worldSize
        self.nodeOfRank = nodes
    }

    public func degree(_ axis: MeshAxis) -> Int { degrees[axis] ?? 1 }

    /// Ranks below one step along `axis`.
    func stride(_ axis: MeshAxis) -> Int {
        MeshAxis.allCases.prefix { $0 != axis }.reduce(1) { $0 * degree($1) }
    }

    /// The coordinate of `rank` along `axis`.
    public func coordinate(of rank: Int, along axis: MeshAxis) -> Int { (rank / stride(axis)) % degree(axis) }

    /// The ranks that differ from `rank` only along `axis`, in axis order: its group for that axis.
    public func group(_ axis: MeshAxis, containing rank: Int) -> [Int] {
        let s = stride(axis), base = rank - coordinate(of: rank, along: axis) * s
        return (0..<degree(axis)).map { base + $0 * s }
    }

    /// The ranks that differ from `rank` only along `axes`, in rank order (the inner axis fastest):
    /// its group for those axes together (ulysses and ring: one sample's sequence-parallel ranks).
    public func group(_ axes: [MeshAxis], containing rank: Int) -> [Int] {
        axes.reduce([rank]) { ranks, axis in
            ranks.flatMap { r in group(axis, containing: r) }
        }.sorted()
    }

    /// Whether every group along `axis` stays inside one node.
    public func isIntraNode(_ axis: MeshAxis) -> Bool {
        (0..<worldSize).allSatisfy { r in Set(group(axis, containing: r).map { nodeOfRank[$0] }).count == 1 }
    }

    /// One node per `ranksPerNode` consecutive ranks (how the local transport emulates hosts).
    public static func nodes(worldSize: Int, nodes: Int) throws -> [Int] {
        guard nodes >= 1, worldSize % nodes == 0 else {
            throw CommError.badArgument(operation: "mesh", reason: "\(worldSize) ranks do not split evenly over \(nodes) nodes")
        }
        return (0..<worldSize).map { $0 / (worldSize / nodes) }
    }
}
