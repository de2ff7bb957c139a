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
        sharded or not, F32/F16/BF16) of DiTTransformer2DModel, PixArtTransformer2DModel, \
        SD3Transformer2DModel or FluxTransformer2DModel. --inputs holds the forward() arguments \
        under their diffusers names (timestep may be I64 or F32):
          DiT:    hidden_states [B,C,H,W], timestep [B], class_labels [B]
          PixArt: hidden_states, encoder_hidden_states [B,L,C], timestep;
                  optional encoder_attention_mask [B,L] (1 keep, 0 drop),
                  resolution [B,2], aspect_ratio [B,1]
          SD3:    hidden_states, encoder_hidden_states, timestep,
                  pooled_projections [B,P]
          Flux:   hidden_states [B,N,C] (packed), encoder_hidden_states,
                  pooled_projections, timestep, img_ids [N,3], txt_ids [L,3],
                  guidance [B] (dev only)
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

    @OptionGroup var ranks: RankOptions

    func run() throws {
        let start = Date()
        let transformer = try AnyTransformer.load(directory: model)
        let args = try ModelInputs(model: transformer, file: SafeTensorsFile(path: inputs))
        let loaded = Date()
        let ranks = try self.ranks.planned(ParallelTransformer.stepShape(model: transformer, inputs: args))
        let results = try ranks.launch { context in
            try ParallelTransformer(model: transformer, context: context).forward(args)
        }
        let done = Date()
        // Every rank holds the whole output; the first rank of this process writes it.
        guard let (rank, sample) = results.first, rank == 0 else { return }
        try writeSafeTensors(["sample": .float(sample)], to: output)
        print("sample \(sample.shape) → \(output)  (load \(fmt(loaded.timeIntervalSince(start), digits: 2)) s, "
              + "forward \(fmt(done.timeIntervalSince(loaded), digits: 3)) s, \(ranks.parallel))")
    }
}
