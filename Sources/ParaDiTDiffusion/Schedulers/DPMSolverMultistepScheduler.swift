import ParaDiTTensor
import ParaDiTWeights

/// The keys of a DPMSolverMultistepScheduler `scheduler_config.json` (diffusers' defaults when
/// absent). Options this port does not implement are refused by name when the scheduler is built.
public struct DPMSolverMultistepSchedulerConfig: Decodable, Sendable, Equatable {
    public var betas = BetaScheduleConfig()
    /// 1, 2 or 3.
    public var solverOrder = 2
    /// "epsilon", "sample" or "v_prediction".
    public var predictionType = "epsilon"
    public var thresholding = false
    /// "dpmsolver++" ("deis" reads as it, like diffusers).
    public var algorithmType = "dpmsolver++"
    /// "midpoint" or "heun" ("logrho", "bh1", "bh2" read as "midpoint", like diffusers).
    public var solverType = "midpoint"
    public var lowerOrderFinal = true
    public var eulerAtFinal = false
    public var useKarrasSigmas = false
    public var useExponentialSigmas = false
    public var useBetaSigmas = false
    public var useLuLambdas = false
    public var useFlowSigmas = false
    public var useDynamicShifting = false
    /// "zero" or "sigma_min".
    public var finalSigmasType = "zero"
    public var lambdaMinClipped = -Double.infinity
    /// Only null: diffusers' learned variants keep 3 channels, meant for pixel-space models.
    public var varianceType: String?
    /// "linspace", "leading" or "trailing".
    public var timestepSpacing = "linspace"
    public var stepsOffset = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case solverOrder, predictionType, thresholding, algorithmType, solverType, lowerOrderFinal, eulerAtFinal
        case useKarrasSigmas, useExponentialSigmas, useBetaSigmas, useLuLambdas, useFlowSigmas, useDynamicShifting
        case finalSigmasType, lambdaMinClipped, varianceType, timestepSpacing, stepsOffset
    }

    public init(from decoder: Swift.Decoder) throws {
        self.init()
        betas = try BetaScheduleConfig(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        solverOrder = try c.value(.solverOrder, default: solverOrder)
        predictionType = try c.value(.predictionType, default: predictionType)
        thresholding = try c.value(.thresholding, default: thresholding)
        algorithmType = try c.value(.algorithmType, default: algorithmType)
        solverType = try c.value(.solverType, default: solverType)
        lowerOrderFinal = try c.value(.lowerOrderFinal, default: lowerOrderFinal)
        eulerAtFinal = try c.value(.eulerAtFinal, default: eulerAtFinal)
        useKarrasSigmas = try c.value(.useKarrasSigmas, default: useKarrasSigmas)
        useExponentialSigmas = try c.value(.useExponentialSigmas, default: useExponentialSigmas)
        useBetaSigmas = try c.value(.useBetaSigmas, default: useBetaSigmas)
        useLuLambdas = try c.value(.useLuLambdas, default: useLuLambdas)
        useFlowSigmas = try c.value(.useFlowSigmas, default: useFlowSigmas)
        useDynamicShifting = try c.value(.useDynamicShifting, default: useDynamicShifting)
        finalSigmasType = try c.value(.finalSigmasType, default: finalSigmasType)
        lambdaMinClipped = try c.number(.lambdaMinClipped, default: lambdaMinClipped)
        varianceType = try c.decodeIfPresent(String.self, forKey: .varianceType)
        timestepSpacing = try c.value(.timestepSpacing, default: timestepSpacing)
        stepsOffset = try c.value(.stepsOffset, default: stepsOffset)
    }

    /// Refuses every option value the port does not implement, naming its key.
    func validate() throws {
        let name = "DPMSolverMultistepScheduler"
        try require([1, 2, 3].contains(solverOrder), name, key: "solver_order", value: "\(solverOrder)", supported: "1, 2, 3")
        try require(["epsilon", "sample", "v_prediction"].contains(predictionType), name, key: "prediction_type",
                    value: "\"\(predictionType)\"", supported: predictionTypes)
        try require(["dpmsolver++", "deis"].contains(algorithmType), name, key: "algorithm_type",
                    value: "\"\(algorithmType)\"", supported: "\"dpmsolver++\"")
        try require(["midpoint", "heun", "logrho", "bh1", "bh2"].contains(solverType), name, key: "solver_type",
                    value: "\"\(solverType)\"", supported: "\"midpoint\", \"heun\"")
        try require(["zero", "sigma_min"].contains(finalSigmasType), name, key: "final_sigmas_type",
                    value: "\"\(finalSigmasType)\"", supported: "\"zero\", \"sigma_min\"")
        try require(["linspace", "leading", "trailing"].contains(timestepSpacing), name, key: "timestep_spacing",
                    value: "\"\(timestepSpacing)\"", supported: "\"linspace\", \"leading\", \"trailing\"")
        try require(varianceType == nil, name, key: "variance_type", value: "\"\(varianceType ?? "")\"", supported: "null")
        let flags: [(String, Bool)] = [
            ("thresholding", thresholding), ("use_karras_sigmas", useKarrasSigmas),
            ("use_exponential_sigmas", useExponentialSigmas), ("use_beta_sigmas", useBetaSigmas),
            ("use_lu_lambdas", useLuLambdas), ("use_flow_sigmas", useFlowSigmas),
            ("use_dynamic_shifting", useDynamicShifting),
        ]
        for (key, on) in flags { try require(!on, name, key: key, value: "true", supported: "false") }
    }
}

/// diffusers' DPMSolverMultistepScheduler with algorithm "dpmsolver++" (PixArt's scheduler):
/// multistep DPM-Solver++ of order 1–3 in data prediction, midpoint or Heun second-order update.
public struct DPMSolverMultistepScheduler: Scheduler, Sendable {
    public let config: DPMSolverMultistepSchedulerConfig
    public let alphasCumprod: [Float]
    /// σ = √((1 − ᾱ)/ᾱ) of every training timestep.
    let trainSigmas: [Float]
    public private(set) var timesteps: [Float] = []
    /// σ of every scheduled timestep, then the final σ.
    public private(set) var sigmas: [Float] = []
    private var stepIndex: Int?
    /// The last `solverOrder` x₀ predictions, oldest first.
    private var history: [Tensor?] = []
    private var lowerOrderCount = 0

    public var className: String { "DPMSolverMultistepScheduler" }

    public init(config: DPMSolverMultistepSchedulerConfig) throws {
        try config.validate()
        self.config = config
        alphasCumprod = try config.betas.alphasCumprod("DPMSolverMultistepScheduler")
        trainSigmas = alphasCumprod.map { ((1 - $0) / $0).squareRoot() }
        let n = config.betas.numTrainTimesteps
        timesteps = (0..<n).reversed().map(Float.init)
        history = Array(repeating: nil, count: config.solverOrder)
    }

    public mutating func setTimesteps(_ steps: Int, mu: Double?) throws {
        try refuseMu(mu, className)
        try checkStepCount(steps, max: nil, className)
        let ts = scheduledTimesteps(steps)
        guard !ts.isEmpty else {
            throw SchedulerError.badInput(scheduler: className, reason: "lambda_min_clipped leaves no timestep for \(steps) steps")
        }
        // A repeated timestep makes a solver step of zero length (λ_t = λ_s), whose multistep update
        // divides by zero: diffusers' latents turn NaN there. Refuse, naming the most steps that work.
        if Set(ts).count != ts.count {
            let most = stride(from: min(steps - 1, config.betas.numTrainTimesteps), to: 0, by: -1).first { n in
                let t = scheduledTimesteps(n)
                return !t.isEmpty && Set(t).count == t.count
            } ?? 1
            throw SchedulerError.badInput(scheduler: className, reason: "\(steps) steps repeat timesteps of the "
                + "\(config.timestepSpacing) schedule over \(config.betas.numTrainTimesteps) training steps; use at most \(most) steps")
        }
        // np.interp over the training σ: exact at whole timesteps, clamped outside the table.
        let table = ts.map { trainSigmas[min(max($0, 0), trainSigmas.count - 1)] }
        let last: Float = config.finalSigmasType == "zero" ? 0 : trainSigmas[0]
        sigmas = table + [last]
        timesteps = ts.map(Float.init)
        history = Array(repeating: nil, count: config.solverOrder)
        lowerOrderCount = 0
        stepIndex = nil
    }

    /// The integer timesteps of diffusers' set_timesteps, below the λ clipping point.
    private func scheduledTimesteps(_ steps: Int) -> [Int] {
        let trainSteps = config.betas.numTrainTimesteps
        // searchsorted of lambda_min_clipped in λ(t) = log α − log σ, ascending from t = T−1.
        let clipped = (0..<trainSteps).first { i in
            let a = alphasCumprod[trainSteps - 1 - i]
            return Double(log32(a.squareRoot()) - log32((1 - a).squareRoot())) >= config.lambdaMinClipped
        } ?? trainSteps
        let last = trainSteps - clipped
        switch config.timestepSpacing {
        case "linspace":
            return numpyLinspace(0, Double(last - 1), steps + 1).map(roundHalfEven).reversed().dropLast()
        case "leading":
            let ratio = last / (steps + 1)
            return (1...steps).reversed().map { $0 * ratio + config.stepsOffset }
        default:
            let ratio = Double(trainSteps) / Double(steps)
            return numpyArange(Double(last), 0, -ratio).map { roundHalfEven($0) - 1 }
        }
    }

    public mutating func step(modelOutput: Tensor, timestep: Float, sample: Tensor, noise: NoiseSource?) throws -> Tensor {
        guard !sigmas.isEmpty else { throw SchedulerError.badInput(scheduler: className, reason: "call setTimesteps before step") }
        try checkShape(modelOutput, like: sample, "the model output", className)
        let index = stepIndex ?? initialIndex(timestep)
        guard index + 1 < sigmas.count else {
            throw SchedulerError.badInput(scheduler: className, reason: "step past the last timestep of the schedule")
        }
        let count = timesteps.count, order = config.solverOrder
        let lowerFinal = index == count - 1
            && (config.eulerAtFinal || (config.lowerOrderFinal && count < 15) || config.finalSigmasType == "zero")
        let lowerSecond = index == count - 2 && config.lowerOrderFinal && count < 15

        let x0 = dataPrediction(modelOutput, sample, sigma: sigmas[index])
        history = Array(history.dropFirst()) + [x0]
        let prev: Tensor
        if order == 1 || lowerOrderCount < 1 || lowerFinal {
            prev = firstOrderUpdate(x0, sample, index)
        } else if order == 2 || lowerOrderCount < 2 || lowerSecond {
            prev = secondOrderUpdate(sample, index)
        } else {
            prev = thirdOrderUpdate(sample, index)
        }
        if lowerOrderCount < order { lowerOrderCount += 1 }
        stepIndex = index + 1
        return prev
    }

    /// diffusers' index_for_timestep: the second match if the timestep repeats, the last step if absent.
    private func initialIndex(_ timestep: Float) -> Int {
        let matches = timesteps.indices.filter { timesteps[$0] == timestep }
        return matches.isEmpty ? timesteps.count - 1 : matches[matches.count > 1 ? 1 : 0]
    }

    /// (α_t, σ_t) of a σ: α = 1/√(σ² + 1), σ_t = σ·α.
    private func alphaSigma(_ sigma: Float) -> (alpha: Float, sigma: Float) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        return (alpha, sigma * alpha)
    }

    /// λ = log α − log σ.
    private func lambda(_ sigma: Float) -> Float {
        let (a, s) = alphaSigma(sigma)
        return log32(a) - log32(s)
    }

    /// x₀ predicted from the model output (convert_model_output).
    private func dataPrediction(_ output: Tensor, _ sample: Tensor, sigma: Float) -> Tensor {
        let (alpha, sigmaT) = alphaSigma(sigma)
        switch config.predictionType {
        case "epsilon": return subtractScaledDivide(sample, sigmaT, output, dividedBy: alpha)
        case "sample": return output.copy()  // kept in the history: the caller may reuse its buffer
        default: return linearCombination([(alpha, sample), (-sigmaT, output)])
        }
    }

    private func firstOrderUpdate(_ x0: Tensor, _ sample: Tensor, _ i: Int) -> Tensor {
        let (alphaT, sigmaT) = alphaSigma(sigmas[i + 1])
        let sigmaS = alphaSigma(sigmas[i]).sigma
        let h = lambda(sigmas[i + 1]) - lambda(sigmas[i])
        return linearCombination([(sigmaT / sigmaS, sample), (-(alphaT * (exp32(-h) - 1)), x0)])
    }

    private func secondOrderUpdate(_ sample: Tensor, _ i: Int) -> Tensor {
        let (alphaT, sigmaT) = alphaSigma(sigmas[i + 1])
        let sigmaS0 = alphaSigma(sigmas[i]).sigma
        let lambdaT = lambda(sigmas[i + 1]), lambdaS0 = lambda(sigmas[i]), lambdaS1 = lambda(sigmas[i - 1])
        let m0 = history[history.count - 1]!, m1 = history[history.count - 2]!
        let h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1
        let r0 = h0 / h
        let d1 = scaledDifference(1 / r0, m0, m1)
        let c0 = alphaT * (exp32(-h) - 1)
        let c1 = config.solverType == "heun" ? alphaT * ((exp32(-h) - 1) / h + 1) : -(0.5 * c0)
        return linearCombination([(sigmaT / sigmaS0, sample), (-c0, m0), (c1, d1)])
    }

    private func thirdOrderUpdate(_ sample: Tensor, _ i: Int) -> Tensor {
        let (alphaT, sigmaT) = alphaSigma(sigmas[i + 1])
        let sigmaS0 = alphaSigma(sigmas[i]).sigma
        let lambdaT = lambda(sigmas[i + 1]), lambdaS0 = lambda(sigmas[i])
        let lambdaS1 = lambda(sigmas[i - 1]), lambdaS2 = lambda(sigmas[i - 2])
        let m0 = history[history.count - 1]!, m1 = history[history.count - 2]!, m2 = history[history.count - 3]!
        let h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1, h1 = lambdaS1 - lambdaS2
        let r0 = h0 / h, r1 = h1 / h
        let d10 = scaledDifference(1 / r0, m0, m1), d11 = scaledDifference(1 / r1, m1, m2)
        let d1 = linearCombination([(1, d10), (1, scaledDifference(r0 / (r0 + r1), d10, d11))])
        let d2 = scaledDifference(1 / (r0 + r1), d10, d11)
        let e = exp32(-h) - 1
        let c0 = alphaT * e, c1 = alphaT * (e / h + 1), c2 = alphaT * ((e + h) / (h * h) - 0.5)
        return linearCombination([(sigmaT / sigmaS0, sample), (-c0, m0), (c1, d1), (-c2, d2)])
    }
}
