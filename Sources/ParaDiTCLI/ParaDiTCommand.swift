import ArgumentParser

/// The `paradit` command tree; the executable's main just runs it.
public struct ParaDiTCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "paradit",
        abstract: "A parallel inference engine for Diffusion Transformers.",
        discussion: """
        ParaDiT runs Diffusion Transformers on the CPU (BLAS and SIMD Swift) and is built to split \
        one image's denoising over ranks. Today: the tensor core, diffusers checkpoints \
        (safetensors, sharded, F32/F16/BF16), forward passes of DiT, PixArt, SD3 and Flux \
        transformers, and the communication layer between ranks (threads, or MPI processes \
        under mpirun).

        Start with `paradit bench kernels` to see what this machine's cores can do.
        """,
        subcommands: [Forward.self, Inspect.self, Bench.self, Selftest.self])
}
