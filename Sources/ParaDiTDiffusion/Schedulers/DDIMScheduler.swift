import ParaDiTTensor
import ParaDiTWeights

/// The keys of a DDIMScheduler `scheduler_config.json` (diffusers' defaults when absent).
public struct DDIMSchedulerConfig: Decodable, Sendable, Equatable {
    public var betas = BetaScheduleConfig()
    public var clipSample = true
    public var clipSampleRange = 1.0
    /// The ᾱ before the first training timestep: 1, or ᾱ₀.
    public var setAlphaToOne = true
    public var stepsOffset = 0
    /// "epsilon", "sample" or "v_prediction".
    public var predictionType = "epsilon"
    public var thresholding = false
    /// "leading", "trailing" or "linspace".
    public var timestepSpacing = "leading"

    public init() {}

    enum CodingKeys: String, CodingKey {
        case clipSample, clipSampleRange, setAlphaToOne, stepsOffset, predictionType, thresholding, timestepSpacing
    }

    public init(from decoder: Swift.Decoder) throws {
        self.init()
        betas = try BetaScheduleConfig(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        clipSample = try c.value(.clipSample, default: clipSample)
        clipSampleRange = try c.number(.clipSampleRange, default: clipSampleRange)
        setAlphaToOne = try c.value(.setAlphaToOne, default: setAlphaToOne)
        stepsOffset = try c.value(.stepsOffset, default: stepsOffset)
        predictionType = try c.value(.predictionType, default: predictionType)
        thresholding = try c.value(.thresholding, default: thresholding)
        timestepSpacing = try c.value(.timestepSpacing, default: timestepSpacing)
    }
}

/// Prediction types of the ε-parameterised schedulers.
let predictionTypes = "\"epsilon\", \"sample\", \"v_prediction\""

/// diffusers' DDIMScheduler: deterministic at `eta` = 0 (DiT's scheduler), stochastic above,
/// with the variance noise asked from the caller.
public struct DDIMScheduler: Scheduler, Sendable {
    public let config: DDIMSchedulerConfig
    /// The weight of the noise added per step (`eta` of diffusers' step): 0 is DDIM, 1 DDPM-like.
    public var eta = 0.0
    public let alphasCumprod: [Float]
    let finalAlphaCumprod: Float
    public private(set) var timesteps: [Float]
    private var numInferenceSteps: Int?

    public var className: String { "DDIMScheduler" }

    public init(config: DDIMSchedulerConfig) throws {
        let name = "DDIMScheduler"
        try require(["epsilon", "sample", "v_prediction"].contains(config.predictionType), name, key: "prediction_type",
                    value: "\"\(config.predictionType)\"", supported: predictionTypes)
        try require(!config.thresholding, name, key: "thresholding", value: "true", supported: "false")
        try validateSpacing(config.timestepSpacing, name)
        self.config = config
        alphasCumprod = try config.betas.alphasCumprod(name)
        finalAlphaCumprod = config.setAlphaToOne ? 1 : alphasCumprod[0]
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
        guard let numInferenceSteps else {
            throw SchedulerError.badInput(scheduler: className, reason: "call setTimesteps before step")
        }
        try checkShape(modelOutput, like: sample, "the model output", className)
        let t = try trainingTimestep(timestep, count: alphasCumprod.count, className)
        // diffusers steps back by the leading stride whatever the spacing.
        let prev = t - config.betas.numTrainTimesteps / numInferenceSteps
        let alphaProd = alphasCumprod[t]
        let alphaProdPrev = prev >= 0 ? alphasCumprod[prev] : finalAlphaCumprod
        let betaProd = 1 - alphaProd
        let (original, epsilon) = predictions(modelOutput, sample, alphaProd: alphaProd, betaProd: betaProd)
        if config.clipSample { clampInPlace(original, range: Float(config.clipSampleRange)) }

        let betaProdPrev = 1 - alphaProdPrev
        let variance = (betaProdPrev / betaProd) * (1 - alphaProd / alphaProdPrev)
        let std = Float(eta) * variance.squareRoot()
        let direction = (1 - alphaProdPrev - std * std).squareRoot()
        var terms = [(alphaProdPrev.squareRoot(), original), (direction, epsilon)]
        let prevSample = linearCombination(terms)
        guard eta > 0 else { return prevSample }
        terms = [(1, prevSample), (std, try drawNoise(noise, like: sample, className, at: timestep))]
        return linearCombination(terms)
    }

    /// (x₀, ε) predicted from the model output.
    private func predictions(_ output: Tensor, _ sample: Tensor, alphaProd: Float, betaProd: Float) -> (Tensor, Tensor) {
        let sqrtAlpha = alphaProd.squareRoot(), sqrtBeta = betaProd.squareRoot()
        switch config.predictionType {
        case "epsilon":
            return (subtractScaledDivide(sample, sqrtBeta, output, dividedBy: sqrtAlpha), output)
        case "sample":
            return (output.copy(), subtractScaledDivide(sample, sqrtAlpha, output, dividedBy: sqrtBeta))
        default:
            return (linearCombination([(sqrtAlpha, sample), (-sqrtBeta, output)]),
                    linearCombination([(sqrtAlpha, output), (sqrtBeta, sample)]))
        }
    }
}
