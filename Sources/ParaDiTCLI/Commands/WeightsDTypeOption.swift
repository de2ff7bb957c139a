import ArgumentParser
import ParaDiTWeights

extension WeightsDType: ExpressibleByArgument {}

/// `--weights-dtype`, shared by every command that loads a model.
struct WeightsOption: ParsableArguments {
    @Option(name: .customLong("weights-dtype"),
            help: ArgumentHelp("""
                Element type of the linear weights: stored (BF16/F16 checkpoints stay as they are, in place; F32 \
                stays F32), f32, bf16, f16, int8 or int8-dynamic.
                """, discussion: """
                int8 quantizes the transformer blocks' linear weights (symmetric, one scale per output channel; \
                the embedders and output layers keep their stored precision) and computes in Float32: a quarter \
                of the bytes, about 1 % from the Float32 output. int8-dynamic also quantizes each GEMM's input \
                per token, so the products run on 8-bit integer kernels (oneDNN, VNNI/AMX): about twice as fast \
                as Float32 where the CPU has them, about 1.5× int8's error.
                """))
    var dtype: WeightsDType = .stored
}
