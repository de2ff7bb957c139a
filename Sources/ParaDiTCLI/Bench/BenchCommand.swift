import ArgumentParser
import Foundation
import Logging
import ParaDiTTensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the engine: kernels, forward passes of real architectures, communication, step caches.",
        discussion: """
        Every figure is the median of --runs timed runs after --warmup untimed ones, and every \
        comparison is a ratio of two figures measured in the same process. Tables go to stdout; \
        --json FILE also writes the machine, the configuration and every timing.
        """,
        subcommands: [BenchKernels.self, BenchForward.self, BenchEncode.self, BenchParallel.self, BenchComm.self, BenchCache.self])
}

struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "GEMM vs raw cblas, fused attention, LayerNorm and GELU throughput.",
        discussion: """
        GEMM runs the engine's wrapper (single-threaded BLAS calls split over the engine's threads) \
        against one raw cblas_sgemm call with OpenBLAS threaded to the same count. Attention is \
        self-attention at 16 heads, head dim 64 and 128, reported as 4·L²·d·heads FLOP per call and \
        as a fraction of the best engine GEMM figure of the same run.

        Example: paradit bench kernels --threads 2 --json kernels.json
        """)

    @Option(help: "Threads for this rank (default: every core).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Timed runs per case; the table shows their median.")
    var runs: Int = 5

    @Option(help: "Untimed warm-up runs per case.")
    var warmup: Int = 1

    @Option(parsing: .upToNextOption, help: "Attention sequence lengths.")
    var seqLens: [Int] = [1024, 4096]

    @Option(parsing: .upToNextOption, help: "Suites to run: gemm, attention, memory (default: all).")
    var only: [KernelBenchmark.Suite] = KernelBenchmark.Suite.allCases

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1, got \(runs)") }
        guard warmup >= 0 else { throw ValidationError("--warmup cannot be negative") }
        guard seqLens.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--seq-lens must be positive") }
    }

    func run() throws {
        let bench = KernelBenchmark(threads: threads, warmup: warmup, runs: runs, attentionLengths: seqLens,
                                     suites: Set(only))
        let log = Logger(label: "paradit.bench")
        let report = bench.run { stage in log.info("running \(stage)") }
        print("machine: \(report.machine.cpu), \(report.machine.logicalCores) cores, \(threads) threads; \(report.machine.blas)\n")
        for table in KernelBenchmark.tables(report) { print(table.render() + "\n") }
        if let json { try writeJSON(report, to: json) }
    }
}

extension KernelBenchmark.Suite: ExpressibleByArgument {}
