import ArgumentParser
import ParaDiTWeights

extension WeightsDType: ExpressibleByArgument {}

/// `--weights-dtype`, shared by every command that loads a model.
struct WeightsOption: ParsableArguments {
    @Option(name: .customLong("weights-dtype"),
            help: "Element type of the linear weights: stored (BF16/F16 checkpoints stay as they are, in place; F32 stays F32), f32, bf16, f16 or int8 (symmetric, one scale per output channel). Compute is Float32.")
    var dtype: WeightsDType = .stored
}
