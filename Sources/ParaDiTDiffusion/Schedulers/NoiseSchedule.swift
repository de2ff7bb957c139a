import Foundation

// The training noise schedule and timestep spacings of the discrete (DDPM-family) schedulers,
// reproducing diffusers' arithmetic: torch float32 where diffusers uses torch, numpy float64 where
// it uses numpy, with numpy's round-half-to-even.

/// The keys that define the training betas, shared by DDIM, DDPM and DPM-Solver.
public struct BetaScheduleConfig: Decodable, Sendable, Equatable {
    public var numTrainTimesteps = 1000
    public var betaStart = 0.0001
    public var betaEnd = 0.02
    /// "linear", "scaled_linear" or "squaredcos_cap_v2".
    public var betaSchedule = "linear"
    /// Betas given directly (one per training timestep), overriding the three keys above.
    public var trainedBetas: [Double]?
    public var rescaleBetasZeroSnr = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case numTrainTimesteps, betaStart, betaEnd, betaSchedule, trainedBetas, rescaleBetasZeroSnr
    }

    public init(from decoder: Swift.Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        numTrainTimesteps = try c.value(.numTrainTimesteps, default: numTrainTimesteps)
        betaStart = try c.number(.betaStart, default: betaStart)
        betaEnd = try c.number(.betaEnd, default: betaEnd)
        betaSchedule = try c.value(.betaSchedule, default: betaSchedule)
        trainedBetas = try c.decodeIfPresent([Double].self, forKey: .trainedBetas)
        rescaleBetasZeroSnr = try c.value(.rescaleBetasZeroSnr, default: rescaleBetasZeroSnr)
    }

    /// alphas_cumprod: the cumulative product of 1 − β over the training timesteps, as float32.
    func alphasCumprod(_ scheduler: String) throws -> [Float] {
        try require((1...maxTrainTimesteps).contains(numTrainTimesteps), scheduler, key: "num_train_timesteps",
                    value: "\(numTrainTimesteps)", supported: "1...\(maxTrainTimesteps)")
        try require(!rescaleBetasZeroSnr, scheduler, key: "rescale_betas_zero_snr", value: "true", supported: "false")
        let betas: [Float]
        if let trainedBetas {
            try require(trainedBetas.count == numTrainTimesteps, scheduler, key: "trained_betas",
                        value: "with \(trainedBetas.count) values", supported: "one per training timestep (\(numTrainTimesteps))")
            betas = trainedBetas.map { Float($0) }
        } else {
            switch betaSchedule {
            case "linear":
                betas = torchLinspace(Float(betaStart), Float(betaEnd), numTrainTimesteps)
            case "scaled_linear":
                betas = torchLinspace(Float(betaStart.squareRoot()), Float(betaEnd.squareRoot()), numTrainTimesteps).map { $0 * $0 }
            case "squaredcos_cap_v2":
                betas = cosineBetas(numTrainTimesteps)
            default:
                throw SchedulerError.unsupported(scheduler: scheduler, key: "beta_schedule", value: "\"\(betaSchedule)\"",
                                                 supported: "\"linear\", \"scaled_linear\", \"squaredcos_cap_v2\"")
            }
        }
        // torch.cumprod over float32 accumulates in double and rounds each partial product.
        var product = 1.0
        return betas.map { beta in
            product *= Double(1 - beta)
            return Float(product)
        }
    }
}

/// torch.linspace in float32 on CPU: the first half counts up from `start`, the second half down
/// from `end`, each as one fused multiply-add (torch's kernel is compiled with FMA contraction).
func torchLinspace(_ start: Float, _ end: Float, _ steps: Int) -> [Float] {
    guard steps > 1 else { return steps == 1 ? [start] : [] }
    let step = (end - start) / Float(steps - 1)
    let halfway = steps / 2
    return (0..<steps).map { i in
        i < halfway ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(steps - 1 - i))
    }
}

/// diffusers' betas_for_alpha_bar with the cosine ᾱ (Python doubles, then float32).
func cosineBetas(_ count: Int) -> [Float] {
    func alphaBar(_ t: Double) -> Double {
        let c = cos((t + 0.008) / 1.008 * Double.pi / 2)
        return c * c
    }
    return (0..<count).map { i in
        let t1 = Double(i) / Double(count), t2 = Double(i + 1) / Double(count)
        return Float(min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
    }
}

/// numpy.linspace(start, stop, num) in float64: i·step + start, the last value exactly `stop`.
func numpyLinspace(_ start: Double, _ stop: Double, _ num: Int) -> [Double] {
    guard num > 0 else { return [] }
    let delta = stop - start
    let div = Double(num - 1)
    let step = delta / div
    var y = (0..<num).map { i -> Double in
        let x = Double(i)
        if num == 1 { return x * delta + start }
        return (step == 0 ? x / div * delta : x * step) + start
    }
    if num > 1 { y[num - 1] = stop }
    return y
}

/// numpy.arange(start, stop, step) in float64: numpy fills element i ≥ 2 as start + i·(a₁ − a₀).
func numpyArange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
    let length = Int(((stop - start) / step).rounded(.up))
    guard length > 0 else { return [] }
    let second = start + step
    let delta = second - start
    return (0..<length).map { i in i == 0 ? start : i == 1 ? second : start + Double(i) * delta }
}

/// numpy's round (half to even) to an integer.
@inline(__always)
func roundHalfEven(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }

/// Refuses a timestep_spacing DDIM and DDPM do not have.
func validateSpacing(_ spacing: String, _ scheduler: String) throws {
    try require(["leading", "trailing", "linspace"].contains(spacing), scheduler, key: "timestep_spacing",
                value: "\"\(spacing)\"", supported: "\"leading\", \"trailing\", \"linspace\"")
}

/// The inference timesteps of DDIM and DDPM for `steps` steps, in the order of the loop.
func spacedTimesteps(spacing: String, trainSteps: Int, steps: Int, offset: Int, _ scheduler: String) throws -> [Int] {
    switch spacing {
    case "linspace":
        return numpyLinspace(0, Double(trainSteps - 1), steps).map(roundHalfEven).reversed()
    case "leading":
        let ratio = trainSteps / steps
        return (0..<steps).reversed().map { $0 * ratio + offset }
    case "trailing":
        let ratio = Double(trainSteps) / Double(steps)
        return numpyArange(Double(trainSteps), 0, -ratio).map { roundHalfEven($0) - 1 }
    default:
        throw SchedulerError.unsupported(scheduler: scheduler, key: "timestep_spacing", value: "\"\(spacing)\"",
                                         supported: "\"leading\", \"trailing\", \"linspace\"")
    }
}

/// Checks a step count against what a scheduler can do.
/// More training timesteps than any published model uses (1000); the tables are built per timestep.
let maxTrainTimesteps = 100_000

func checkStepCount(_ steps: Int, max: Int?, _ scheduler: String) throws {
    guard steps >= 1 else {
        throw SchedulerError.badInput(scheduler: scheduler, reason: "the number of inference steps must be at least 1, got \(steps)")
    }
    if let max, steps > max {
        throw SchedulerError.badInput(scheduler: scheduler,
                                      reason: "\(steps) inference steps exceed num_train_timesteps (\(max))")
    }
}

/// Refuses `mu` for schedulers without dynamic shifting (diffusers' would not accept one).
func refuseMu(_ mu: Double?, _ scheduler: String) throws {
    if let mu {
        throw SchedulerError.badInput(scheduler: scheduler, reason: "takes no mu (got \(mu)); only dynamic shifting uses one")
    }
}

/// A diffusers integer timestep given as a Float, checked to be a training timestep.
func trainingTimestep(_ timestep: Float, count: Int, _ scheduler: String) throws -> Int {
    guard timestep.rounded() == timestep, timestep >= 0, timestep < Float(count) else {
        throw SchedulerError.badInput(scheduler: scheduler,
                                      reason: "timestep \(timestep) is not a training timestep (a whole number in 0..<\(count))")
    }
    return Int(timestep)
}

/// Libm in double, rounded once: correctly rounded float32 log and exp. torch's own (MKL) float32
/// functions may differ by one ulp; the schedulers' results stay within 1e-6 of diffusers'.
@inline(__always) func log32(_ x: Float) -> Float { Float(Foundation.log(Double(x))) }
@inline(__always) func exp32(_ x: Float) -> Float { Float(Foundation.exp(Double(x))) }
