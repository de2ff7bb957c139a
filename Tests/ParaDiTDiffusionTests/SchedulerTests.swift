import Foundation
import ParaDiTDiffusion
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// The committed fixtures from tools/make_scheduler_fixtures.py.
private let schedulerFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/schedulers").path

private func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<b.count {
        let d = Double(a.data[i]) - Double(b.data[i])
        num += d * d
        den += Double(b.data[i]) * Double(b.data[i])
    }
    return (num / den).squareRoot()
}

/// The σ schedule of the schedulers that have one.
private func sigmas(_ scheduler: any Scheduler) -> [Float]? {
    (scheduler as? DPMSolverMultistepScheduler)?.sigmas ?? (scheduler as? FlowMatchEulerDiscreteScheduler)?.sigmas
        ?? (scheduler as? UniPCMultistepScheduler)?.sigmas
}

/// Sets the timesteps as the fixture's pipeline did: FluxPipeline's σ and mu, or steps (and mu).
/// Whether the scheduler's σ equal diffusers'. DPM-Solver's σ = √((1 − ᾱ)/ᾱ) may differ by an
/// ulp: torch's float32 square root (MKL) is not always correctly rounded. Flow matching's are exact.
private func sigmasMatch(_ scheduler: any Scheduler, _ expected: [Float]) -> Bool {
    guard let got = sigmas(scheduler), got.count == expected.count else { return false }
    let tolerance: Float = scheduler is DPMSolverMultistepScheduler ? 1.2e-7 : 0
    return zip(got, expected).allSatisfy { abs($0 - $1) <= tolerance * abs($1) }
}

private func setTimesteps(_ scheduler: inout any Scheduler, steps: Int, metadata: [String: String]) throws {
    let mu = try metadata["image_seq_len"].flatMap(Int.init).map { seqLen -> Double in
        let flow = try #require(scheduler as? FlowMatchEulerDiscreteScheduler)
        return flow.mu(imageSeqLen: seqLen)
    }
    if metadata["mode"] == "flux", var flow = scheduler as? FlowMatchEulerDiscreteScheduler {
        try flow.setTimesteps(sigmas: FlowMatchEulerDiscreteScheduler.fluxSigmas(steps: steps), mu: mu)
        scheduler = flow
    } else {
        try scheduler.setTimesteps(steps, mu: mu)
    }
}

private func makeFromJSON(_ json: String) throws -> any Scheduler {
    try makeScheduler(config: ConfigFile(data: Data(json.utf8), path: "scheduler_config.json"))
}

@Suite("Schedulers equal diffusers")
struct SchedulerTests {
    /// "<config folder>/<run file>" of every stepped run.
    static let runs = [
        "pixart-alpha/run-1", "pixart-alpha/run-4", "pixart-alpha/run-20",
        "dpm-order3-heun/run-4", "dpm-order3-heun/run-12", "dit-dpm/run-25",
        "dpm-cosine-clipped/run-5", "dpm-cosine-clipped/run-16",
        "dit/run-1", "dit/run-4-batch", "dit/run-10",
        "ddim-sd/run-8", "ddim-sd/run-4-eta", "ddim-trailing-v/run-4", "ddim-trailing-v/run-7-eta",
        "ddim-linspace-sample/run-6",
        "ddpm-default/run-4", "ddpm-default/run-1", "ddpm-dit-learned-range/run-8-learned",
        "ddpm-learned/run-4-learned", "ddpm-fixed-large/run-5", "ddpm-fixed-small-log/run-4",
        "sd3/run-1", "sd3/run-4", "sd3/run-10",
        "flux-schnell/run-1", "flux-schnell/run-4", "flux-dev/run-8", "flux-dev/run-10", "flux-dev/run-6",
        "flow-dynamic-linear-stochastic/run-5",
        // UniPC on flow σ: Wan 2.1's config (order 2, bh2), and order 3 with bh1, ε, a corrector off, σ_min last.
        "wan-unipc/run-1", "wan-unipc/run-4", "wan-unipc/run-12", "wan-unipc/run-3-batch", "unipc-order3-bh1/run-8",
    ]

    static let sweeps = [
        "pixart-alpha", "dpm-order3-heun", "dpm-cosine-clipped", "dit", "ddim-trailing-v", "ddim-linspace-sample",
        "ddpm-default", "sd3", "flux-schnell", "flux-dev", "wan-unipc",
    ]

    @Test("every step's sample matches diffusers (relative L2 ≤ 1e-6)", arguments: runs)
    func run(_ name: String) throws {
        let folder = "\(schedulerFixtures)/\(name.split(separator: "/")[0])"
        let file = try SafeTensorsFile(path: "\(schedulerFixtures)/\(name).safetensors")
        let meta = file.metadata
        let steps = try #require(meta["steps"].flatMap(Int.init))
        var scheduler = try makeScheduler(directory: folder)
        if let mu = meta["mu"].flatMap(Double.init), let seqLen = meta["image_seq_len"].flatMap(Int.init) {
            #expect((scheduler as? FlowMatchEulerDiscreteScheduler)?.mu(imageSeqLen: seqLen) == mu, "calculate_shift")
        }
        if let eta = meta["eta"].flatMap(Double.init), eta > 0, var ddim = scheduler as? DDIMScheduler {
            ddim.eta = eta
            scheduler = ddim
        }
        try setTimesteps(&scheduler, steps: steps, metadata: meta)
        #expect(scheduler.timesteps == (try file.values("timesteps").map(Float.init)))
        if file.entries["sigmas"] != nil {
            #expect(sigmasMatch(scheduler, try file.tensor("sigmas").scalars), "σ")
        }

        let samples = try file.tensor("samples"), outputs = try file.tensor("model_outputs")
        let noises = file.entries["noises"] != nil ? try file.tensor("noises") : nil
        var sample = samples[0].copy(), draws = 0
        for (k, t) in scheduler.timesteps.enumerated() {
            let noise: NoiseSource? = noises.map { all in { _ in draws += 1; return all[k] } }
            sample = try scheduler.step(modelOutput: outputs[k], timestep: t, sample: sample, noise: noise)
            let error = relativeError(sample, samples[k + 1])
            #expect(error <= 1e-6, "\(name) step \(k) (t = \(t)): relative L2 error \(error)")
        }
        #expect(scheduler.timesteps.count == outputs.shape[0])
        #expect(draws == Int(meta["noise_draws"] ?? "0"), "noise drawn at the steps diffusers draws it")
    }

    @Test("timesteps and σ match diffusers for step counts 1 … 1000", arguments: sweeps)
    func sweep(_ config: String) throws {
        let file = try SafeTensorsFile(path: "\(schedulerFixtures)/\(config)/sweep.safetensors")
        let counts = file.names.filter { $0.hasPrefix("timesteps_") }.compactMap { Int($0.dropFirst(10)) }
        #expect(counts.count >= 9)
        for n in counts {
            var scheduler = try makeScheduler(directory: "\(schedulerFixtures)/\(config)")
            let expected = try file.values("timesteps_\(n)")
            // Where diffusers repeats a timestep its DPM-Solver divides by zero; the engine refuses.
            if scheduler is DPMSolverMultistepScheduler && Set(expected).count != expected.count {
                #expect(throws: SchedulerError.self, "\(config), \(n) steps") { try setTimesteps(&scheduler, steps: n, metadata: file.metadata) }
                continue
            }
            try setTimesteps(&scheduler, steps: n, metadata: file.metadata)
            #expect(scheduler.timesteps == expected.map(Float.init), "\(config), \(n) steps")
            if file.entries["sigmas_\(n)"] != nil {
                #expect(sigmasMatch(scheduler, try file.tensor("sigmas_\(n)").scalars), "\(config), \(n) steps: σ")
            }
        }
    }

    @Test("PixArt's -Infinity is read as a number")
    func nonFiniteConfigValues() throws {
        let config = try loadSchedulerConfig(directory: "\(schedulerFixtures)/pixart-alpha")
        let dpm = try config.decode(DPMSolverMultistepSchedulerConfig.self)
        #expect(dpm.lambdaMinClipped == -.infinity)
        #expect(dpm.solverOrder == 2 && dpm.algorithmType == "dpmsolver++" && dpm.timestepSpacing == "linspace")
        let dit = try #require(try makeScheduler(directory: "\(schedulerFixtures)/dit") as? DDIMScheduler)
        #expect(dit.config.timestepSpacing == "leading" && !dit.config.clipSample)
    }

    @Test("DiT's swap to DPM-Solver (from_config) reads DiT's config as diffusers does")
    func fromConfig() throws {
        let swapped = try makeScheduler("DPMSolverMultistepScheduler",
                                        config: loadSchedulerConfig(directory: "\(schedulerFixtures)/dit"))
        let saved = try makeScheduler(directory: "\(schedulerFixtures)/dit-dpm")
        let a = try #require(swapped as? DPMSolverMultistepScheduler), b = try #require(saved as? DPMSolverMultistepScheduler)
        #expect(a.config == b.config)
    }

    @Test("an unknown class is refused, naming the supported ones")
    func unknownClass() {
        #expect {
            _ = try makeFromJSON(#"{"_class_name": "EulerDiscreteScheduler"}"#)
        } throws: { error in
            "\(error)" == "unknown scheduler class EulerDiscreteScheduler; supported: DDIMScheduler, DDPMScheduler, "
                + "DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler"
        }
    }

    static let unsupported: [(String, String)] = [
        (#"{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"}"#, "algorithm_type"),
        (#"{"_class_name": "DPMSolverMultistepScheduler", "use_karras_sigmas": true}"#, "use_karras_sigmas"),
        (#"{"_class_name": "DPMSolverMultistepScheduler", "variance_type": "learned_range"}"#, "variance_type"),
        (#"{"_class_name": "DPMSolverMultistepScheduler", "solver_order": 4}"#, "solver_order"),
        (#"{"_class_name": "DDIMScheduler", "thresholding": true}"#, "thresholding"),
        (#"{"_class_name": "DDIMScheduler", "timestep_spacing": "karras"}"#, "timestep_spacing"),
        (#"{"_class_name": "DDIMScheduler", "rescale_betas_zero_snr": true}"#, "rescale_betas_zero_snr"),
        (#"{"_class_name": "DDPMScheduler", "variance_type": "fixed_large_log"}"#, "variance_type"),
        (#"{"_class_name": "DDPMScheduler", "beta_schedule": "sigmoid"}"#, "beta_schedule"),
        (#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift_terminal": 0.1}"#, "shift_terminal"),
        (#"{"_class_name": "UniPCMultistepScheduler"}"#, "use_flow_sigmas"),
        (#"{"_class_name": "UniPCMultistepScheduler", "use_flow_sigmas": true, "solver_order": 4}"#, "solver_order"),
        (#"{"_class_name": "UniPCMultistepScheduler", "use_flow_sigmas": true, "predict_x0": false}"#, "predict_x0"),
        (#"{"_class_name": "UniPCMultistepScheduler", "use_flow_sigmas": true, "solver_type": "bh3"}"#, "solver_type"),
        (#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "invert_sigmas": true}"#, "invert_sigmas"),
    ]

    @Test("an unsupported option value is refused, naming its key", arguments: unsupported)
    func unsupportedOption(json: String, key: String) {
        #expect {
            _ = try makeFromJSON(json)
        } throws: { error in
            guard case let .unsupported(_, errorKey, _, _)? = error as? SchedulerError else { return false }
            return errorKey == key && "\(error)".contains(key)
        }
    }

    @Test("a key of the wrong type is an error naming the key")
    func wrongType() {
        #expect {
            _ = try makeFromJSON(#"{"_class_name": "DPMSolverMultistepScheduler", "solver_order": "two"}"#)
        } throws: { error in
            (error as? WeightsError).map { "\($0)".contains("\"solver_order\"") } ?? false
        }
    }

    @Test("bad use is refused: mu, step counts, missing noise, shapes, stepping unset")
    func badUse() throws {
        var ddim = try makeScheduler(directory: "\(schedulerFixtures)/dit")
        #expect(throws: SchedulerError.self) { try ddim.step(modelOutput: Tensor(zeros: [1, 4, 2, 2]), timestep: 999, sample: Tensor(zeros: [1, 4, 2, 2])) }
        #expect(throws: SchedulerError.self) { try ddim.setTimesteps(4, mu: 0.5) }
        #expect(throws: SchedulerError.self) { try ddim.setTimesteps(0) }
        #expect(throws: SchedulerError.self) { try ddim.setTimesteps(1001) }

        // 1000 linspace steps over 1000 training steps repeat a timestep: DPM-Solver++ would divide by zero.
        var dpmLinspace = try makeScheduler(directory: "\(schedulerFixtures)/pixart-alpha")
        #expect(throws: SchedulerError.self) { try dpmLinspace.setTimesteps(1000) }
        try dpmLinspace.setTimesteps(999)
        #expect(Set(dpmLinspace.timesteps).count == 999)

        var flux = try makeScheduler(directory: "\(schedulerFixtures)/flux-dev")
        #expect(throws: SchedulerError.self) { try flux.setTimesteps(4, mu: nil) }

        var ddpm = try makeScheduler(directory: "\(schedulerFixtures)/ddpm-default")
        try ddpm.setTimesteps(4)
        let sample = Tensor(zeros: [1, 4, 2, 2])
        #expect(throws: SchedulerError.self) { try ddpm.step(modelOutput: sample, timestep: 750, sample: sample) }
        #expect(throws: SchedulerError.self) {
            try ddpm.step(modelOutput: sample, timestep: 750, sample: sample, noise: { _ in Tensor(zeros: [1, 4]) })
        }

        var learned = try makeScheduler(directory: "\(schedulerFixtures)/ddpm-dit-learned-range")
        try learned.setTimesteps(4)
        #expect(throws: SchedulerError.self) { try learned.step(modelOutput: sample, timestep: 750, sample: sample) }

        var dpm = try makeScheduler(directory: "\(schedulerFixtures)/pixart-alpha")
        try dpm.setTimesteps(4)
        #expect(throws: SchedulerError.self) {
            try dpm.step(modelOutput: Tensor(zeros: [1, 8, 2, 2]), timestep: 999, sample: sample)
        }
    }

    @Test("FluxPipeline's helpers: calculate_shift and its σ")
    func fluxHelpers() {
        #expect(abs(calculateShift(imageSeqLen: 4096) - 1.15) < 1e-12)
        #expect(abs(calculateShift(imageSeqLen: 256) - 0.5) < 1e-12)
        #expect(FlowMatchEulerDiscreteScheduler.fluxSigmas(steps: 4) == [1, 0.75, 0.5, 0.25])
        #expect(FlowMatchEulerDiscreteScheduler.fluxSigmas(steps: 1) == [1])
    }
}
