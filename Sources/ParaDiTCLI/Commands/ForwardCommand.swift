import ArgumentParser
import Foundation
import ParaDiTModels
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

        Example: paradit forward --model dit/transformer --inputs in.safetensors --output out.safetensors
        """)

    @Option(help: "The diffusers model folder.")
    var model: String

    @Option(help: "safetensors file with the forward() inputs.")
    var inputs: String

    @Option(help: "Where to write the output (tensor \"sample\").")
    var output: String

    @Option(help: "Parallel degrees, e.g. cfg=2,ulysses=2 (only 'serial' runs in this build).")
    var parallel = ParallelSpec()

    @Option(help: "Threads for this rank (default: every core).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        try parallel.requireRunnable()
    }

    func run() throws {
        let start = Date()
        let transformer = try AnyTransformer.load(directory: model)
        let loaded = Date()
        let args = try SafeTensorsFile(path: inputs)
        let sample = try ThreadPool(threads: threads).withCurrent { try transformer.forward(inputs: args) }
        let done = Date()
        try writeSafeTensors(["sample": .float(sample)], to: output)
        print("sample \(sample.shape) → \(output)  (load \(fmt(loaded.timeIntervalSince(start), digits: 2)) s, "
              + "forward \(fmt(done.timeIntervalSince(loaded), digits: 3)) s, \(threads) threads)")
    }
}
