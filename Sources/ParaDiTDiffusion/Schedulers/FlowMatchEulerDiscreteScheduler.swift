import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// The keys of a FlowMatchEulerDiscreteScheduler `scheduler_config.json` (diffusers' defaults
/// when absent). Options this port does not implement are refused by name.
public struct FlowMatchEulerDiscreteSchedulerConfig: Decodable, Sendable, Equatable {
    public var numTrainTimesteps = 1000
    /// The static shift of the σ schedule (SD3: 3), unused with dynamic shifting.
    public var shift = 1.0
    /// Shift by the `mu` the pipeline passes, from the image's sequence length (Flux-dev).
    public var useDynamicShifting = false
    public var baseShift = 0.5
    public var maxShift = 1.15
    public var baseImageSeqLen = 256
    public var maxImageSeqLen = 4096
    /// "exponential" or "linear".
    public var timeShiftType = "exponential"
    /// Each step re-noises the x₀ prediction with fresh noise instead of an Euler step.
    public var stochasticSampling = false
    public var invertSigmas = false
    public var shiftTerminal: Double?
    public var useKarrasSigmas = false
    public var useExponentialSigmas = false
    public var useBetaSigmas = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case numTrainTimesteps, shift, useDynamicShifting, baseShift, maxShift, baseImageSeqLen, maxImageSeqLen
        case timeShiftType, stochasticSampling, invertSigmas, shiftTerminal, useKarrasSigmas, useExponentialSigmas
        case useBetaSigmas
    }

    public init(from decoder: Swift.Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        numTrainTimesteps = try c.value(.numTrainTimesteps, default: numTrainTimesteps)
        shift = try c.number(.shift, default: shift)
        useDynamicShifting = try c.value(.useDynamicShifting, default: useDynamicShifting)
        baseShift = try c.number(.baseShift, default: baseShift)
        maxShift = try c.number(.maxShift, default: maxShift)
        baseImageSeqLen = try c.value(.baseImageSeqLen, default: baseImageSeqLen)
        maxImageSeqLen = try c.value(.maxImageSeqLen, default: maxImageSeqLen)
        timeShiftType = try c.value(.timeShiftType, default: timeShiftType)
        stochasticSampling = try c.value(.stochasticSampling, default: stochasticSampling)
        invertSigmas = try c.value(.invertSigmas, default: invertSigmas)
        shiftTerminal = try c.decodeIfPresent(Double.self, forKey: .shiftTerminal)
        useKarrasSigmas = try c.value(.useKarrasSigmas, default: useKarrasSigmas)
        useExponentialSigmas = try c.value(.useExponentialSigmas, default: useExponentialSigmas)
        useBetaSigmas = try c.value(.useBetaSigmas, default: useBetaSigmas)
    }

    func validate() throws {
        let name = "FlowMatchEulerDiscreteScheduler"
        try require((1...maxTrainTimesteps).contains(numTrainTimesteps), name, key: "num_train_timesteps",
                    value: "\(numTrainTimesteps)", supported: "1...\(maxTrainTimesteps)")
        try require(["exponential", "linear"].contains(timeShiftType), name, key: "time_shift_type",
                    value: "\"\(timeShiftType)\"", supported: "\"exponential\", \"linear\"")
        try require(shiftTerminal == nil || shiftTerminal == 0, name, key: "shift_terminal",
                    value: "\(shiftTerminal ?? 0)", supported: "null")
        let flags: [(String, Bool)] = [
            ("invert_sigmas", invertSigmas), ("use_karras_sigmas", useKarrasSigmas),
            ("use_exponential_sigmas", useExponentialSigmas), ("use_beta_sigmas", useBetaSigmas),
        ]
        for (key, on) in flags { try require(!on, name, key: key, value: "true", supported: "false") }
    }
}

/// FluxPipeline's `mu`: the time shift interpolated linearly in the image's token count between
/// (baseSeqLen, baseShift) and (maxSeqLen, maxShift) (diffusers' calculate_shift, in doubles).
public func calculateShift(imageSeqLen: Int, baseSeqLen: Int = 256, maxSeqLen: Int = 4096,
                           baseShift: Double = 0.5, maxShift: Double = 1.15) -> Double {
    let m = (maxShift - baseShift) / Double(maxSeqLen - baseSeqLen)
    let b = baseShift - m * Double(baseSeqLen)
    return Double(imageSeqLen) * m + b
}

/// diffusers' FlowMatchEulerDiscreteScheduler (SD3, Flux): Euler steps on σ from 1 towards 0.
/// `setTimesteps(_:mu:)` is the default schedule (SD3's pipeline); FluxPipeline passes its own
/// σ (`fluxSigmas`) through `setTimesteps(sigmas:mu:)`.
public struct FlowMatchEulerDiscreteScheduler: Scheduler, Sendable {
    public let config: FlowMatchEulerDiscreteSchedulerConfig
    public private(set) var timesteps: [Float]
    /// σ of every scheduled timestep, then 0.
    public private(set) var sigmas: [Float]
    /// The first and last σ of the training schedule, the range of the default schedule.
    let sigmaMax: Double, sigmaMin: Double
    private var stepIndex: Int?

    public var className: String { "FlowMatchEulerDiscreteScheduler" }

    public init(config: FlowMatchEulerDiscreteSchedulerConfig) throws {
        try config.validate()
        self.config = config
        let n = config.numTrainTimesteps
        var s = (0..<n).map { Float(n - $0) / Float(n) }
        if !config.useDynamicShifting {
            let shift = Float(config.shift), shiftLess1 = Float(config.shift - 1)
            s = s.map { shift * $0 / (1 + shiftLess1 * $0) }
        }
        sigmas = s
        timesteps = s.map { $0 * Float(n) }
        sigmaMax = Double(s[0])
        sigmaMin = Double(s[n - 1])
    }

    /// FluxPipeline's σ for `steps` steps: numpy.linspace(1, 1/steps, steps).
    public static func fluxSigmas(steps: Int) -> [Double] {
        numpyLinspace(1, 1 / Double(steps), steps)
    }

    /// `calculateShift` with this config's base and max values, as the pipelines call it.
    public func mu(imageSeqLen: Int) -> Double {
        calculateShift(imageSeqLen: imageSeqLen, baseSeqLen: config.baseImageSeqLen, maxSeqLen: config.maxImageSeqLen,
                       baseShift: config.baseShift, maxShift: config.maxShift)
    }

    /// The default schedule: `steps` timesteps spaced evenly over the training range (float64 in
    /// diffusers), then shifted (statically, or by `mu` with dynamic shifting).
    public mutating func setTimesteps(_ steps: Int, mu: Double?) throws {
        try checkStepCount(steps, max: nil, className)
        let n = Double(config.numTrainTimesteps)
        let t = numpyLinspace(sigmaMax * n, sigmaMin * n, steps)
        let s = t.map { $0 / n }
        let shifted: [Double]
        if config.useDynamicShifting {
            let mu = try requireMu(mu)
            shifted = s.map { config.timeShiftType == "exponential" ? exp(mu) / (exp(mu) + (1 / $0 - 1)) : mu / (mu + (1 / $0 - 1)) }
        } else {
            shifted = s.map { config.shift * $0 / (1 + (config.shift - 1) * $0) }
        }
        install(shifted.map(Float.init))
    }

    /// A given σ schedule (FluxPipeline's `fluxSigmas`), made float32 and then shifted in float32
    /// like diffusers' numpy code on a float32 array.
    public mutating func setTimesteps(sigmas given: [Double], mu: Double?) throws {
        try checkStepCount(given.count, max: nil, className)
        let s = given.map(Float.init)
        if config.useDynamicShifting {
            let mu = try requireMu(mu)
            let e = Float(config.timeShiftType == "exponential" ? exp(mu) : mu)
            install(s.map { e / (e + (1 / $0 - 1)) })
        } else {
            let shift = Float(config.shift), shiftLess1 = Float(config.shift - 1)
            install(s.map { shift * $0 / (1 + shiftLess1 * $0) })
        }
    }

    private func requireMu(_ mu: Double?) throws -> Double {
        guard let mu else {
            throw SchedulerError.badInput(scheduler: className, reason: "use_dynamic_shifting needs mu (see mu(imageSeqLen:))")
        }
        return mu
    }

    private mutating func install(_ s: [Float]) {
        let n = Float(config.numTrainTimesteps)
        timesteps = s.map { $0 * n }
        sigmas = s + [0]
        stepIndex = nil
    }

    public mutating func step(modelOutput: Tensor, timestep: Float, sample: Tensor, noise: NoiseSource?) throws -> Tensor {
        try checkShape(modelOutput, like: sample, "the model output", className)
        let index: Int
        if let stepIndex {
            index = stepIndex
        } else {
            let matches = timesteps.indices.filter { timesteps[$0] == timestep }
            guard !matches.isEmpty else {
                throw SchedulerError.badInput(scheduler: className, reason: "timestep \(timestep) is not in the schedule")
            }
            index = matches[matches.count > 1 ? 1 : 0]
        }
        guard index + 1 < sigmas.count else {
            throw SchedulerError.badInput(scheduler: className, reason: "step past the last timestep of the schedule")
        }
        let sigma = sigmas[index], next = sigmas[index + 1]
        let prev: Tensor
        if config.stochasticSampling {
            let x0 = linearCombination([(1, sample), (-sigma, modelOutput)])
            let drawn = try drawNoise(noise, like: sample, className, at: timestep)
            prev = linearCombination([(1 - next, x0), (next, drawn)])
        } else {
            prev = linearCombination([(1, sample), (next - sigma, modelOutput)])
        }
        stepIndex = index + 1
        return prev
    }
}
