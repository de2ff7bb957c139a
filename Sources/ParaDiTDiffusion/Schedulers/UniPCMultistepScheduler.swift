import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// The keys of a UniPCMultistepScheduler `scheduler_config.json` (diffusers' defaults when absent).
/// This port runs UniPC on flow-matching σ (`use_flow_sigmas`, Wan's configuration) in its
/// data-prediction form; other options are refused by name.
public struct UniPCMultistepSchedulerConfig: Decodable, Sendable, Equatable {
    public var numTrainTimesteps = 1000
    public var solverOrder = 2
    public var predictionType = "epsilon"
    public var predictX0 = true
    /// "bh1" or "bh2": B(h) = h or eᴴ − 1.
    public var solverType = "bh2"
    public var lowerOrderFinal = true
    /// Step indices whose corrector is skipped.
    public var disableCorrector: [Int] = []
    public var useFlowSigmas = false
    public var flowShift = 1.0
    /// "zero" or "sigma_min": the σ after the last step.
    public var finalSigmasType = "zero"
    public var thresholding = false
    public var useDynamicShifting = false
    public var useKarrasSigmas = false, useExponentialSigmas = false, useBetaSigmas = false
    public var shiftTerminal: Double?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case numTrainTimesteps, solverOrder, predictionType, predictX0, solverType, lowerOrderFinal, disableCorrector
        case useFlowSigmas, flowShift, finalSigmasType, thresholding, useDynamicShifting, useKarrasSigmas
        case useExponentialSigmas, useBetaSigmas, shiftTerminal
    }

    public init(from decoder: Swift.Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        numTrainTimesteps = try c.value(.numTrainTimesteps, default: numTrainTimesteps)
        solverOrder = try c.value(.solverOrder, default: solverOrder)
        predictionType = try c.value(.predictionType, default: predictionType)
        predictX0 = try c.value(.predictX0, default: predictX0)
        solverType = try c.value(.solverType, default: solverType)
        lowerOrderFinal = try c.value(.lowerOrderFinal, default: lowerOrderFinal)
        disableCorrector = try c.value(.disableCorrector, default: disableCorrector)
        useFlowSigmas = try c.value(.useFlowSigmas, default: useFlowSigmas)
        flowShift = try c.number(.flowShift, default: flowShift)
        finalSigmasType = try c.value(.finalSigmasType, default: finalSigmasType)
        thresholding = try c.value(.thresholding, default: thresholding)
        useDynamicShifting = try c.value(.useDynamicShifting, default: useDynamicShifting)
        useKarrasSigmas = try c.value(.useKarrasSigmas, default: useKarrasSigmas)
        useExponentialSigmas = try c.value(.useExponentialSigmas, default: useExponentialSigmas)
        useBetaSigmas = try c.value(.useBetaSigmas, default: useBetaSigmas)
        shiftTerminal = try c.decodeIfPresent(Double.self, forKey: .shiftTerminal)
    }

    func validate() throws {
        let name = "UniPCMultistepScheduler"
        try require((1...maxTrainTimesteps).contains(numTrainTimesteps), name, key: "num_train_timesteps",
                    value: "\(numTrainTimesteps)", supported: "1...\(maxTrainTimesteps)")
        try require(useFlowSigmas, name, key: "use_flow_sigmas", value: "false",
                    supported: "true (flow matching, as Wan)")
        try require((1...3).contains(solverOrder), name, key: "solver_order", value: "\(solverOrder)",
                    supported: "1, 2, 3")
        try require(["flow_prediction", "epsilon", "sample", "v_prediction"].contains(predictionType), name,
                    key: "prediction_type", value: "\"\(predictionType)\"",
                    supported: "\"flow_prediction\", \"epsilon\", \"sample\", \"v_prediction\"")
        try require(["bh1", "bh2"].contains(solverType), name, key: "solver_type", value: "\"\(solverType)\"",
                    supported: "\"bh1\", \"bh2\"")
        try require(["zero", "sigma_min"].contains(finalSigmasType), name, key: "final_sigmas_type",
                    value: "\"\(finalSigmasType)\"", supported: "\"zero\", \"sigma_min\"")
        try require(flowShift.isFinite && flowShift > 0, name, key: "flow_shift", value: "\(flowShift)",
                    supported: "> 0")
        try require(shiftTerminal == nil || shiftTerminal == 0, name, key: "shift_terminal",
                    value: "\(shiftTerminal ?? 0)", supported: "null")
        let flags: [(String, Bool)] = [
            ("predict_x0", !predictX0), ("thresholding", thresholding), ("use_dynamic_shifting", useDynamicShifting),
            ("use_karras_sigmas", useKarrasSigmas), ("use_exponential_sigmas", useExponentialSigmas),
            ("use_beta_sigmas", useBetaSigmas),
        ]
        for (key, unsupported) in flags {
            try require(!unsupported, name, key: key, value: key == "predict_x0" ? "false" : "true",
                        supported: key == "predict_x0" ? "true" : "false")
        }
    }
}

/// diffusers' UniPCMultistepScheduler (Wan 2.1): a predictor of order up to `solver_order` on the
/// x₀ predictions of the last steps, then, at the next step, a corrector with the new model
/// output (UniC), in λ = log α − log σ with α = 1 − σ on flow-matching σ. The scalars are float32
/// as diffusers' 0-d tensors; the element-wise updates round as torch does (SchedulerKernels).
public struct UniPCMultistepScheduler: Scheduler, Sendable {
    public let config: UniPCMultistepSchedulerConfig
    public private(set) var timesteps: [Float] = []
    /// σ of every scheduled timestep, then the final σ.
    public private(set) var sigmas: [Float] = []
    private var stepIndex: Int?
    /// The last `solver_order` x₀ predictions, oldest first (nil before there are that many).
    var modelOutputs: [Tensor?]
    private var lowerOrderNums = 0
    private var lastSample: Tensor?
    /// The order of the predictor of the step in progress (and of the next step's corrector).
    var thisOrder = 1

    var modelOutputsNewestFirst: [Tensor?] { modelOutputs.reversed() }

    public var className: String { "UniPCMultistepScheduler" }

    public init(config: UniPCMultistepSchedulerConfig) throws {
        try config.validate()
        self.config = config
        modelOutputs = Array(repeating: nil, count: config.solverOrder)
    }

    /// σ evenly from 1 to 1/N (float64, as numpy), shifted by flow_shift; the timesteps are σ·N
    /// truncated to whole numbers, as diffusers casts them to int64.
    public mutating func setTimesteps(_ steps: Int, mu: Double?) throws {
        try checkStepCount(steps, max: nil, className)
        if mu != nil {
            throw SchedulerError.badInput(scheduler: className,
                                          reason: "mu is for dynamic shifting, which this config does not use")
        }
        let n = Double(config.numTrainTimesteps), shift = config.flowShift
        var s = Array(numpyLinspace(1, 1 / n, steps + 1).dropLast()).map { shift * $0 / (1 + (shift - 1) * $0) }
        if abs(s[0] - 1) < 1e-6 { s[0] -= 1e-6 }
        timesteps = s.map { Float(Int64($0 * n)) }
        sigmas = s.map(Float.init) + [config.finalSigmasType == "zero" ? 0 : Float(s[s.count - 1])]
        modelOutputs = Array(repeating: nil, count: config.solverOrder)
        (lowerOrderNums, lastSample, stepIndex, thisOrder) = (0, nil, nil, 1)
    }

    public mutating func step(modelOutput: Tensor, timestep: Float, sample: Tensor,
                              noise: NoiseSource?) throws -> Tensor {
        guard !timesteps.isEmpty else {
            throw SchedulerError.badInput(scheduler: className, reason: "call setTimesteps before step")
        }
        try checkShape(modelOutput, like: sample, "the model output", className)
        let i = try stepIndex ?? startIndex(timestep)
        guard i < timesteps.count else {
            throw SchedulerError.badInput(scheduler: className,
                                          reason: "stepped past the last of \(timesteps.count) timesteps")
        }
        stepIndex = i
        let x0 = dataPrediction(modelOutput, sample: sample, sigma: sigmas[i])
        var sample = sample
        if i > 0, !config.disableCorrector.contains(i - 1), let last = lastSample {
            sample = corrected(x0, lastSample: last, sample: sample, index: i)
        }
        modelOutputs = Array(modelOutputs.dropFirst()) + [x0]
        let order = config.lowerOrderFinal ? min(config.solverOrder, timesteps.count - i) : config.solverOrder
        thisOrder = min(order, lowerOrderNums + 1)
        lastSample = sample
        let next = predicted(sample, index: i)
        lowerOrderNums = min(lowerOrderNums + 1, config.solverOrder)
        stepIndex = i + 1
        return next
    }

    /// diffusers' index_for_timestep: the first match (the second if the timestep repeats).
    func startIndex(_ t: Float) throws -> Int {
        let matches = timesteps.indices.filter { timesteps[$0] == t }
        guard let first = matches.first else {
            throw SchedulerError.badInput(scheduler: className, reason: "timestep \(t) is not in the schedule")
        }
        return matches.count > 1 ? matches[1] : first
    }

    func alphaSigma(_ sigma: Float) -> (alpha: Float, sigma: Float) { (1 - sigma, sigma) }
    func lambda(_ sigma: Float) -> Float {
        let (a, s) = alphaSigma(sigma)
        return logf(a) - logf(s)
    }

    /// The x₀ prediction of the model output at σ.
    func dataPrediction(_ output: Tensor, sample: Tensor, sigma: Float) -> Tensor {
        let (alpha, s) = alphaSigma(sigma)
        switch config.predictionType {
        case "flow_prediction": return linearCombination([(1, sample), (-s, output)])
        case "epsilon": return subtractScaledDivide(sample, s, output, dividedBy: alpha)
        case "sample": return output
        default: return linearCombination([(alpha, sample), (-s, output)])
        }
    }
}
