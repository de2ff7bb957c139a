/// How a sequence-parallel attention layer is split, decided once per run from the configuration
/// (`ParallelContext.plan`): Ulysses inside the ulysses group, then across the ring axis either a
/// ring of K/V shards or Torus's shifted rounds, each by matched send/recv or one-sided puts;
/// DistriFusion and PipeFusion replace the runtime altogether.
public struct AttentionPlan: Sendable, Equatable {
    /// What crosses the ring axis (the inter-node one when ranks fill nodes consecutively).
    public enum Columns: Sendable, Equatable { case none, ring, torus }

    public let ulysses: Bool
    public let columns: Columns
    public let oneSided: Bool

    public init(_ config: ParallelConfig) {
        ulysses = config.ulysses > 1
        columns = config.torus > 1 ? .torus : config.ring > 1 ? .ring : .none
        oneSided = config.oneSided && columns != .none
    }
}
