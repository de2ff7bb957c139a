import ArgumentParser

/// The `paradit` command tree; the executable's main just runs it.
public struct ParaDiTCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "paradit",
        abstract: "A parallel inference engine for Diffusion Transformers.",
        discussion: """
        ParaDiT runs Diffusion Transformers on the CPU (BLAS and SIMD Swift) and splits one \
        image's denoising over ranks — threads of this process, or MPI processes under mpirun — \
        with the exact methods (--parallel cfg=…,ulysses=…,ring=…), whose output equals the serial \
        one. It reads diffusers folders (safetensors, sharded, F32/F16/BF16, held as stored or in \
        INT8 with --weights-dtype) of DiT, PixArt, SD3 and Flux, with their tokenizers and text \
        encoders for --prompt.

        Start with `paradit generate` (the shipped digits demo, no download), then \
        `paradit generate --model FOLDER --prompt "…"`, and `paradit bench kernels` to see what \
        this machine's cores can do.

        Exit status: 0 success; 1 an error, explained in one line on stderr (a file that cannot \
        be read, a configuration the model cannot run…); 64 a usage error (an unknown or \
        malformed option).
        """,
        subcommands: [Generate.self, Serve.self, Encode.self, Tokenize.self, Forward.self, Quality.self,
                      Inspect.self, Bench.self, Selftest.self])
}
