import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// Noise for a stochastic step, of the given shape. The caller owns the torch-exact random
/// generator, so it draws the noise; a scheduler asks only when diffusers' `step` would draw, so the
/// caller's generator advances exactly as diffusers' does.
public typealias NoiseSource = (_ shape: [Int]) throws -> Tensor

/// A diffusers scheduler, step for step: `setTimesteps`, then one `step` per entry of `timesteps`
/// in order. Per-run state (the step index, DPM-Solver's history) lives in the scheduler and is
/// reset by `setTimesteps`.
public protocol Scheduler {
    /// The diffusers class, as `_class_name` names it.
    var className: String { get }
    /// The schedule the denoising loop walks, as the model receives it: diffusers' int64 timesteps
    /// are whole numbers here, flow matching's float32 ones are exact.
    var timesteps: [Float] { get }
    /// Standard deviation of the starting noise.
    var initNoiseSigma: Float { get }
    /// Sets the schedule for `steps` denoising steps. `mu` is the resolution-dependent shift of
    /// dynamic shifting: flow matching needs it with `use_dynamic_shifting` and ignores it
    /// otherwise (as diffusers does); the other schedulers refuse one.
    mutating func setTimesteps(_ steps: Int, mu: Double?) throws
    /// The model input for `sample` at `timestep` (the sample itself for every scheduler here).
    func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor
    /// The sample of the next timestep, from the model's output at `timestep`, which must be the
    /// next entry of `timesteps`. `noise` is asked for the variance noise of stochastic steps.
    mutating func step(modelOutput: Tensor, timestep: Float, sample: Tensor, noise: NoiseSource?) throws -> Tensor
}

extension Scheduler {
    public var initNoiseSigma: Float { 1 }

    public func scaleModelInput(_ sample: Tensor, timestep: Float) -> Tensor { sample }

    public mutating func setTimesteps(_ steps: Int) throws { try setTimesteps(steps, mu: nil) }

    public mutating func step(modelOutput: Tensor, timestep: Float, sample: Tensor) throws -> Tensor {
        try step(modelOutput: modelOutput, timestep: timestep, sample: sample, noise: nil)
    }
}

/// What can be wrong with a scheduler's config or its use, naming the scheduler and the key.
public enum SchedulerError: Error, CustomStringConvertible, Equatable {
    case unknownClass(String, supported: [String])
    case unsupported(scheduler: String, key: String, value: String, supported: String)
    case badInput(scheduler: String, reason: String)

    public var description: String {
        switch self {
        case let .unknownClass(name, supported):
            return "unknown scheduler class \(name); supported: \(supported.joined(separator: ", "))"
        case let .unsupported(scheduler, key, value, supported):
            return "\(scheduler): \(key) \(value) is not supported (supported: \(supported))"
        case let .badInput(scheduler, reason):
            return "\(scheduler): \(reason)"
        }
    }
}

/// The scheduler classes `makeScheduler` builds.
public let supportedSchedulers = [
    "DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler", "FlowMatchEulerDiscreteScheduler",
    "UniPCMultistepScheduler",
]

/// The scheduler a `scheduler_config.json` describes, chosen by its `_class_name`.
public func makeScheduler(config: ConfigFile) throws -> any Scheduler {
    try makeScheduler(config.className, config: config)
}

/// A scheduler of class `className` configured from another scheduler's config, like diffusers'
/// `from_config` (DiTPipeline's documented swap of its DDIM for DPM-Solver): keys the class does
/// not have are ignored, keys it has and the config lacks take its defaults.
public func makeScheduler(_ className: String, config: ConfigFile) throws -> any Scheduler {
    switch className {
    case "DDIMScheduler": return try DDIMScheduler(config: config.decode(DDIMSchedulerConfig.self))
    case "DDPMScheduler": return try DDPMScheduler(config: config.decode(DDPMSchedulerConfig.self))
    case "DPMSolverMultistepScheduler":
        return try DPMSolverMultistepScheduler(config: config.decode(DPMSolverMultistepSchedulerConfig.self))
    case "FlowMatchEulerDiscreteScheduler":
        return try FlowMatchEulerDiscreteScheduler(config: config.decode(FlowMatchEulerDiscreteSchedulerConfig.self))
    case "UniPCMultistepScheduler":
        return try UniPCMultistepScheduler(config: config.decode(UniPCMultistepSchedulerConfig.self))
    default: throw SchedulerError.unknownClass(className, supported: supportedSchedulers)
    }
}

/// The scheduler of a diffusers `scheduler` folder (its `scheduler_config.json`).
public func makeScheduler(directory: String) throws -> any Scheduler {
    try makeScheduler(config: loadSchedulerConfig(directory: directory))
}

/// Reads `scheduler_config.json` in `directory`. Python's json writes non-finite floats as bare
/// `-Infinity`, `Infinity` and `NaN` (PixArt's `lambda_min_clipped` is `-Infinity`), which JSON
/// parsers refuse; they become strings here, and the scheduler configs read them back as numbers.
public func loadSchedulerConfig(directory: String) throws -> ConfigFile {
    let path = (directory as NSString).appendingPathComponent("scheduler_config.json")
    guard let data = FileManager.default.contents(atPath: path) else {
        throw WeightsError.cannotOpen(path: path, reason: "no such file (a diffusers scheduler folder has scheduler_config.json)")
    }
    return try ConfigFile(data: quotingNonFiniteNumbers(data), path: path)
}

/// `data` with every `-Infinity`, `Infinity` and `NaN` outside a JSON string put in quotes.
func quotingNonFiniteNumbers(_ data: Data) -> Data {
    let bytes = [UInt8](data)
    let words: [[UInt8]] = ["-Infinity", "Infinity", "NaN"].map { Array($0.utf8) }
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count + 16)
    var i = 0, inString = false
    while i < bytes.count {
        let c = bytes[i]
        if inString {
            out.append(c)
            if c == UInt8(ascii: "\\"), i + 1 < bytes.count {
                out.append(bytes[i + 1])
                i += 1
            } else if c == UInt8(ascii: "\"") {
                inString = false
            }
        } else if c == UInt8(ascii: "\"") {
            inString = true
            out.append(c)
        } else if let word = words.first(where: { bytes[i...].starts(with: $0) }) {
            out += [UInt8(ascii: "\"")] + word + [UInt8(ascii: "\"")]
            i += word.count - 1
        } else {
            out.append(c)
        }
        i += 1
    }
    return Data(out)
}

extension KeyedDecodingContainer {
    /// A float key that may hold a non-finite value quoted by `quotingNonFiniteNumbers`; absent
    /// or null gives `defaultValue`.
    func number(_ key: Key, default defaultValue: Double) throws -> Double {
        if let text = try? decodeIfPresent(String.self, forKey: key) {
            switch text {
            case "-Infinity": return -.infinity
            case "Infinity": return .infinity
            case "NaN": return .nan
            default: break
            }
        }
        return try value(key, default: defaultValue)
    }
}

/// Refuses an option value the port does not implement, naming the key as the config spells it.
func require(_ condition: Bool, _ scheduler: String, key: String, value: String, supported: String) throws {
    if !condition { throw SchedulerError.unsupported(scheduler: scheduler, key: key, value: value, supported: supported) }
}

/// Checks that `tensor` has the sample's shape.
func checkShape(_ tensor: Tensor, like sample: Tensor, _ name: String, _ scheduler: String) throws {
    guard tensor.shape == sample.shape else {
        throw SchedulerError.badInput(scheduler: scheduler, reason: "\(name) has shape \(tensor.shape), the sample \(sample.shape)")
    }
}

/// Draws the variance noise of a step from `noise`, checking its shape.
func drawNoise(_ noise: NoiseSource?, like sample: Tensor, _ scheduler: String, at timestep: Float) throws -> Tensor {
    guard let noise else {
        throw SchedulerError.badInput(scheduler: scheduler, reason: "the step at timestep \(timestep) needs variance noise (pass noise:)")
    }
    let drawn = try noise(sample.shape)
    try checkShape(drawn, like: sample, "the variance noise", scheduler)
    return drawn
}
