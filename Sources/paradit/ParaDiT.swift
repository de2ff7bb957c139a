import ArgumentParser

@main
struct ParaDiT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paradit",
        abstract: "A parallel inference engine for Diffusion Transformers.",
        discussion: """
        ParaDiT runs diffusers DiT checkpoints on the CPU and splits one image's denoising over
        ranks: threads in one process, or MPI processes under mpirun.

        Start with `paradit bench kernels` to see what this machine's core can do.
        """,
        subcommands: [Bench.self])
}
