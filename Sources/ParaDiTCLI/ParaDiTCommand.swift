import ArgumentParser

/// The `paradit` command tree; the executable's main just runs it.
public struct ParaDiTCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "paradit",
        abstract: "A parallel inference engine for Diffusion Transformers.",
        discussion: """
        ParaDiT runs Diffusion Transformers on the CPU (BLAS and SIMD Swift) and is built to split
        one image's denoising over ranks. Today it ships the tensor core: GEMM, fused attention,
        normalisation, embeddings and convolution kernels, and their benchmark.

        Start with `paradit bench kernels` to see what this machine's cores can do.
        """,
        subcommands: [Bench.self])
}
