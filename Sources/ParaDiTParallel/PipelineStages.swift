import ParaDiTModels
import ParaDiTTensor

extension ParallelConfig {
    /// The blocks of each PipeFusion stage for a model of `blockCount` blocks: the explicit
    /// counts of `stageBlocks`, or an even split (earlier stages one longer).
    public func stageBlockRanges(blockCount: Int) throws -> [Range<Int>] {
        guard let explicit = stageBlocks else {
            guard pipefusion <= blockCount else {
                throw ParallelError.unsupported("pipefusion=\(pipefusion) needs at least one block per stage, but the model has \(blockCount); lower pipefusion")
            }
            return balancedSplit(blockCount, parts: pipefusion)
        }
        guard explicit.count == pipefusion, explicit.allSatisfy({ $0 >= 1 }), explicit.reduce(0, +) == blockCount else {
            throw ParallelError.unsupported("--stage-blocks \(explicit.map(String.init).joined(separator: ",")) must give \(pipefusion) positive counts summing to the model's \(blockCount) blocks")
        }
        var start = 0
        return explicit.map { n in defer { start += n }; return start..<(start + n) }
    }
}
