import ArgumentParser
import Foundation
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one forward pass of a diffusers transformer on tensors from a file.",
        discussion: """
        --model is a diffusers model folder (config.json and diffusion_pytorch_model.safetensors, \
        sharded or not, F32/F16/BF16) of a registered class. --inputs holds the forward() \
        arguments under their diffusers names (timestep may be I64 or F32):
        \(ModelRegistry.families.map { "  \($0.className):\n      \($0.inputNames)" }.joined(separator: "\n"))
        The result is written to --output as the tensor "sample".

        With --parallel the pass is split over ranks (threads of this process, or MPI processes \
        under mpirun) and its output equals the serial one within float32 noise.

        Examples:
          paradit forward --model dit/transformer --inputs in.safetensors --output out.safetensors
          paradit forward --model … --inputs … --output … --parallel cfg=2,ulysses=2 --comm-report
          mpirun -np 4 paradit forward --model … --inputs … --output … --parallel ulysses=2,ring=2
        """)

    @Option(help: "The diffusers model folder.")
    var model: String

    @Option(help: "safetensors file with the forward() inputs.")
    var inputs: String

    @Option(help: "Where to write the output (tensor \"sample\").")
    var output: String

    @OptionGroup var weights: WeightsOption
    @OptionGroup var compute: ComputeOption
    @OptionGroup var ranks: RankOptions

    func validate() throws {
        try compute.check(weights: weights)
    }

    func run() throws {
        let start = Date()
        try OutputPaths.check([output], inputs: [model, inputs])
        let transformer = try ModelRegistry.load(directory: model, weightsDType: weights.dtype, compute: compute.dtype)
        let args = try ModelRegistry.family(transformer.className).readInputs(SafeTensorsFile(path: inputs))
        let loaded = Date()
        let problem = try transformer.problem(any: args)
        let ranks = try self.ranks.planned(StepShape(problem, compute: compute.dtype))
        try ranks.check(problem, blockCount: transformer.blockCount)
        let results = try ranks.launch { context in
            // PipeFusion passes the whole image through its stages (exact, as in its warm-up).
            context.config.pipefusion > 1 ? try PipeFusion(model: transformer, context: context).forward(args)
                : try ParallelTransformer(model: transformer, context: context).forward(args)
        }
        let done = Date()
        // Every rank holds the whole output; the first rank of this process writes it.
        guard let (rank, sample) = results.first, rank == 0 else { return }
        guard allFinite(sample) else {
            let bad = sample.scalars.filter { !$0.isFinite }.count
            throw ValidationError("the output is not finite (\(bad) of \(sample.count) values NaN or Inf); "
                                  + "check the weights and inputs for NaN or Inf")
        }
        try writeSafeTensors(["sample": .float(sample)], to: output)
        print("sample \(sample.shape) → \(output)  (load \(fmt(loaded.timeIntervalSince(start), digits: 2)) s, "
              + "forward \(fmt(done.timeIntervalSince(loaded), digits: 3)) s, \(ranks.parallel))")
    }
}
