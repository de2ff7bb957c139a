import ArgumentParser
import Foundation
import Logging
import ParaDiTModels
import ParaDiTTensor
import ParaDiTWeights

struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Time one forward pass of a real DiT architecture with random weights.",
        discussion: """
        Presets: \(ForwardPreset.all.map { "\n  \($0.name): \($0.summary)" }.joined())

        The model is built in memory with random weights (nothing to download), then timed on the \
        inputs of one denoising step. benchmarks/torch_forward.py times diffusers on the same \
        config, inputs and thread count.

        Example: paradit bench forward --preset dit-xl-2-256 --runs 3 --json dit.json
        """)

    @Option(help: "Architecture: \(ForwardPreset.names.joined(separator: ", ")).")
    var preset: String

    @Option(help: "Latent frames of a video preset (default: the preset's; each is 4 video frames).")
    var frames: Int?

    @Option(help: "Threads for this rank (default: every core).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Timed runs; the table shows their median.")
    var runs: Int = 3

    @Option(help: "Untimed warm-up runs.")
    var warmup: Int = 1

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    @OptionGroup var weights: WeightsOption
    @OptionGroup var compute: ComputeOption

    struct Report: Codable {
        var suite = "forward"
        var preset: String
        var description: String
        var machine: MachineInfo
        var parameters: Int
        var weightsDtype: String
        var computeDtype: String
        /// Bytes the linear weights keep resident, and the process's peak RSS.
        var weightBytes: Int
        var peakMemoryBytes: Int
        var timing: Timing
    }

    func validate() throws {
        guard ForwardPreset.names.contains(preset) else {
            throw ValidationError("unknown --preset \(preset); choose one of \(ForwardPreset.names.joined(separator: ", "))")
        }
        try compute.check(weights: weights)
        guard threads >= 1, runs >= 1, warmup >= 0 else { throw ValidationError("--threads and --runs must be at least 1, --warmup at least 0") }
    }

    func run() throws {
        let log = Logger(label: "paradit.bench")
        let p = ForwardPreset.named(preset)!
        let pool = ThreadPool(threads: threads)
        let inputsPath = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-\(preset)-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: inputsPath) }
        let report: Report = try pool.withCurrent {
            log.info("building \(p.name) with random weights")
            let (model, parameters, weightBytes) = try p.build(weightsDType: weights.dtype, compute: compute.dtype)
            let inputs = try p.inputs(path: inputsPath, frames: frames)
            var failure: Error?
            let timing = measure(warmup: warmup, runs: runs) {
                log.info("forward pass")
                do { _ = try model.forward(any: inputs) } catch { failure = error }
            }
            if let failure { throw failure }
            return Report(preset: p.name, description: p.summary(frames: frames),
                          machine: .current(threads: threads), parameters: parameters,
                          weightsDtype: weights.dtype.rawValue, computeDtype: compute.dtype.rawValue,
                          weightBytes: weightBytes, peakMemoryBytes: peakMemoryBytes(), timing: timing)
        }
        var table = ResultTable(title: "Forward pass, random \(weights.dtype.rawValue) weights, "
                                + "\(compute.dtype.rawValue) compute (\(threads) threads)",
                                columns: ["preset", "parameters", "linear weights", "peak RSS", "s (median)", "min", "max"])
        table.add([p.name, fmt(Double(report.parameters) / 1e6) + " M", fmt(Double(report.weightBytes) / 1_073_741_824, digits: 2) + " GiB",
                   fmt(Double(report.peakMemoryBytes) / 1_073_741_824, digits: 2) + " GiB", fmt(report.timing.median, digits: 3),
                   fmt(report.timing.min, digits: 3), fmt(report.timing.max, digits: 3)])
        print(p.summary(frames: frames) + "\n")
        print(table.render())
        if let json { try writeJSON(report, to: json) }
    }
}
