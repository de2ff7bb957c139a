import ArgumentParser
import ParaDiTWeights

extension WeightsDType: ExpressibleByArgument {}
extension ComputeDType: ExpressibleByArgument {}

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
                as Float32 where the CPU has them, about 1.5× int8's error; text encoders take it as int8.
                """))
    var dtype: WeightsDType = .stored
}

/// `--dtype`, for the commands that run the transformer.
struct ComputeOption: ParsableArguments {
    @Option(name: .customLong("dtype"),
            help: ArgumentHelp("What the transformer's linears and attention compute in: f32 or bf16.", discussion: """
                bf16 holds every linear weight of the transformer's blocks in BF16 (a BF16 checkpoint's in place, \
                with no conversion), rounds each layer's input to BF16 and sums in Float32; attention rounds Q, K, V \
                and its probabilities to BF16 and sums in Float32; the parallel methods exchange activations as BF16 \
                (half the bytes, the same result). The embedders and output layers, norms, softmax statistics, \
                the timestep path and the scheduler stay Float32. oneDNN runs the products where the CPU has AMX \
                (several times the Float32 rate) or full-rate AVX512-BF16 (AMD Zen 4); elsewhere the Float32 GEMM \
                runs the same rounded products, a little slower than f32, with half the weight memory \
                (`paradit bench kernels` shows the kernel and its rate). Needs --weights-dtype stored or bf16.
                """))
    var dtype: ComputeDType = .f32

    /// Refuses a compute type the weights cannot run on.
    func check(weights: WeightsOption) throws {
        if let refusal = dtype.refusal(weights: weights.dtype) { throw ValidationError(refusal) }
    }
}
