import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// The keys of a DDPMScheduler `scheduler_config.json` (diffusers' defaults when absent).
public struct DDPMSchedulerConfig: Decodable, Sendable, Equatable {
    public var betas = BetaScheduleConfig()
    /// "fixed_small", "fixed_small_log", "fixed_large", "learned" or "learned_range"; the last two
    /// read the variance from the second half of the model output's channels.
    public var varianceType = "fixed_small"
    public var clipSample = true
    public var clipSampleRange = 1.0
    /// "epsilon", "sample" or "v_prediction".
    public var predictionType = "epsilon"
    public var thresholding = false
    /// "leading", "trailing" or "linspace".
    public var timestepSpacing = "leading"
    public var stepsOffset = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case varianceType, clipSample, clipSampleRange, predictionType, thresholding, timestepSpacing, stepsOffset
    }

    public init(from decoder: Swift.Decoder) throws {
        self.init()
        betas = try BetaScheduleConfig(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        varianceType = try c.value(.varianceType, default: varianceType)
        clipSample = try c.value(.clipSample, default: clipSample)
        clipSampleRange = try c.number(.clipSampleRange, default: clipSampleRange)
        predictionType = try c.value(.predictionType, default: predictionType)
        thresholding = try c.value(.thresholding, default: thresholding)
        timestepSpacing = try c.value(.timestepSpacing, default: timestepSpacing)
        stepsOffset = try c.value(.stepsOffset, default: stepsOffset)
    }

    var learnsVariance: Bool { varianceType == "learned" || varianceType == "learned_range" }
}

/// diffusers' DDPMScheduler. Its variance noise comes from the caller, asked for at every step
/// with t > 0 (where diffusers draws it). With a learned variance, pass the whole model output
/// (2·C channels: ε then the variance, as DiT predicts them); the step splits it like diffusers.
public struct DDPMScheduler: Scheduler, Sendable {
    public let config: DDPMSchedulerConfig
    public let alphasCumprod: [Float]
    public private(set) var timesteps: [Float]
    private var numInferenceSteps: Int?

    public var className: String { "DDPMScheduler" }

    public init(config: DDPMSchedulerConfig) throws {
        let name = "DDPMScheduler"
        let variances = ["fixed_small", "fixed_small_log", "fixed_large", "learned", "learned_range"]
        try require(variances.contains(config.varianceType), name, key: "variance_type", value: "\"\(config.varianceType)\"",
                    supported: variances.map { "\"\($0)\"" }.joined(separator: ", "))
        try require(["epsilon", "sample", "v_prediction"].contains(config.predictionType), name, key: "prediction_type",
                    value: "\"\(config.predictionType)\"", supported: predictionTypes)
        try require(!config.thresholding, name, key: "thresholding", value: "true", supported: "false")
        try validateSpacing(config.timestepSpacing, name)
        self.config = config
        alphasCumprod = try config.betas.alphasCumprod(name)
        timesteps = (0..<config.betas.numTrainTimesteps).reversed().map(Float.init)
    }

    public mutating func setTimesteps(_ steps: Int, mu: Double?) throws {
        try refuseMu(mu, className)
        let trainSteps = config.betas.numTrainTimesteps
        try checkStepCount(steps, max: trainSteps, className)
        timesteps = try spacedTimesteps(spacing: config.timestepSpacing, trainSteps: trainSteps, steps: steps,
                                        offset: config.stepsOffset, className).map(Float.init)
        numInferenceSteps = steps
    }

    public mutating func step(modelOutput: Tensor, timestep: Float, sample: Tensor, noise: NoiseSource?) throws -> Tensor {
        let (output, predictedVariance) = try splitOutput(modelOutput, sample)
        let t = try trainingTimestep(timestep, count: alphasCumprod.count, className)
        let prev = try previousTimestep(t)
        let alphaProd = alphasCumprod[t]
        let alphaProdPrev: Float = prev >= 0 ? alphasCumprod[prev] : 1
        let betaProd = 1 - alphaProd, betaProdPrev = 1 - alphaProdPrev
        let currentAlpha = alphaProd / alphaProdPrev
        let currentBeta = 1 - currentAlpha

        let original: Tensor
        switch config.predictionType {
        case "epsilon": original = subtractScaledDivide(sample, betaProd.squareRoot(), output, dividedBy: alphaProd.squareRoot())
        case "sample": original = output.copy()
        default: original = linearCombination([(alphaProd.squareRoot(), sample), (-betaProd.squareRoot(), output)])
        }
        if config.clipSample { clampInPlace(original, range: Float(config.clipSampleRange)) }

        let originalCoeff = (alphaProdPrev.squareRoot() * currentBeta) / betaProd
        let sampleCoeff = currentAlpha.squareRoot() * betaProdPrev / betaProd
        let prevSample = linearCombination([(originalCoeff, original), (sampleCoeff, sample)])
        guard t > 0 else { return prevSample }
        let drawn = try drawNoise(noise, like: sample, className, at: timestep)
        let deviation = try standardDeviation(t: t, prev: prev, predictedVariance: predictedVariance)
        return addNoise(prevSample, deviation, drawn)
    }

    /// The model output's ε (or x₀, v) part and, for a learned variance given as 2·C channels,
    /// the variance part.
    private func splitOutput(_ output: Tensor, _ sample: Tensor) throws -> (Tensor, Tensor?) {
        let channels = sample.rank > 1 ? sample.shape[1] : 0
        if config.learnsVariance, output.rank > 1, output.shape[1] == 2 * channels {
            let (head, tail) = splitChannels(output, first: channels)
            try checkShape(head, like: sample, "the model output's first half", className)
            return (head, tail)
        }
        if config.learnsVariance {
            throw SchedulerError.badInput(scheduler: className, reason: "variance_type \"\(config.varianceType)\" needs the"
                + " whole model output, \(2 * channels) channels (ε then the variance), got shape \(output.shape)")
        }
        try checkShape(output, like: sample, "the model output", className)
        return (output, nil)
    }

    /// The timestep after `t` in the schedule (−1 after the last), as diffusers' previous_timestep.
    private func previousTimestep(_ t: Int) throws -> Int {
        guard numInferenceSteps != nil else { return t - 1 }
        guard let index = timesteps.firstIndex(of: Float(t)) else {
            throw SchedulerError.badInput(scheduler: className, reason: "timestep \(t) is not in the schedule set by setTimesteps")
        }
        return index == timesteps.count - 1 ? -1 : Int(timesteps[index + 1])
    }

    /// How the noise is scaled: one scalar, or per element for a learned variance.
    private enum Deviation {
        case scalar(Float)
        case perElement(Tensor)
    }

    /// The standard deviation of the step's noise (diffusers' _get_variance and its use in step).
    private func standardDeviation(t: Int, prev: Int, predictedVariance: Tensor?) throws -> Deviation {
        let alphaProd = alphasCumprod[t]
        let alphaProdPrev: Float = prev >= 0 ? alphasCumprod[prev] : 1
        let currentBeta = 1 - alphaProd / alphaProdPrev
        let variance = max((1 - alphaProdPrev) / (1 - alphaProd) * currentBeta, Float(1e-20))
        switch config.varianceType {
        case "fixed_small": return .scalar(variance.squareRoot())
        case "fixed_small_log": return .scalar(exp32(0.5 * log32(variance)))
        case "fixed_large": return .scalar(currentBeta.squareRoot())
        case "learned": return .perElement(map(predictedVariance!) { $0.squareRoot() })
        default:
            let minLog = log32(variance), maxLog = log32(currentBeta)
            return .perElement(map(predictedVariance!) { v in
                let fraction = (v + 1) / 2
                return exp32(0.5 * (fraction * maxLog + (1 - fraction) * minLog))
            })
        }
    }

    private func map(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
        let out = Tensor(uninitialized: x.shape)
        let o = out.data, p = x.data
        withExtendedLifetime(x) {
            for i in 0..<x.count { o[i] = f(p[i]) }
        }
        return out
    }

    /// prev + σ·noise, σ a scalar or per element.
    private func addNoise(_ prev: Tensor, _ deviation: Deviation, _ noise: Tensor) -> Tensor {
        switch deviation {
        case let .scalar(sigma):
            return linearCombination([(1, prev), (sigma, noise)])
        case let .perElement(sigma):
            let out = Tensor(uninitialized: prev.shape)
            let o = out.data, p = prev.data, s = sigma.data, z = noise.data
            withExtendedLifetime((prev, sigma, noise)) {
                for i in 0..<out.count { o[i] = p[i] + s[i] * z[i] }
            }
            return out
        }
    }
}
