import ParaDiTTensor
import ParaDiTWeights

/// The forward() inputs of any supported model, typed: what a step schedule splits over ranks.
public enum ModelInputs {
    case dit(DiTInputs)
    case pixart(PixArtInputs)
    case sd3(SD3Inputs)
    case flux(FluxInputs)

    /// Reads the inputs of `model`'s class from a file named as diffusers' forward() arguments.
    public init(model: AnyTransformer, file: SafeTensorsFile) throws {
        switch model {
        case .dit: self = .dit(try DiTInputs(file: file))
        case .pixart: self = .pixart(try PixArtInputs(file: file))
        case .sd3: self = .sd3(try SD3Inputs(file: file))
        case .flux: self = .flux(try FluxInputs(file: file))
        }
    }

    public var batch: Int {
        switch self {
        case let .dit(i): return i.hiddenStates.size(0)
        case let .pixart(i): return i.hiddenStates.size(0)
        case let .sd3(i): return i.hiddenStates.size(0)
        case let .flux(i): return i.hiddenStates.size(0)
        }
    }

    /// Text tokens that join the image tokens in self-attention (SD3, Flux); 0 otherwise.
    public var jointTextTokens: Int {
        switch self {
        case .dit, .pixart: return 0
        case let .sd3(i): return i.encoderHiddenStates.size(1)
        case let .flux(i): return i.encoderHiddenStates.size(1)
        }
    }

    /// Samples `range` of the batch (views; per-sample lists sliced alike).
    public func samples(_ r: Range<Int>) -> ModelInputs {
        func s(_ a: [Float]) -> [Float] { a.isEmpty ? a : Array(a[r]) }
        switch self {
        case var .dit(i):
            (i.hiddenStates, i.timestep, i.classLabels) = (i.hiddenStates.rows(r), s(i.timestep), Array(i.classLabels[r]))
            return .dit(i)
        case var .pixart(i):
            (i.hiddenStates, i.encoderHiddenStates, i.timestep) = (i.hiddenStates.rows(r), i.encoderHiddenStates.rows(r), s(i.timestep))
            i.encoderAttentionMask = i.encoderAttentionMask?.rows(r)
            if !i.resolution.isEmpty { i.resolution = Array(i.resolution[(2 * r.lowerBound)..<(2 * r.upperBound)]) }
            i.aspectRatio = s(i.aspectRatio)
            return .pixart(i)
        case var .sd3(i):
            (i.hiddenStates, i.encoderHiddenStates, i.timestep) = (i.hiddenStates.rows(r), i.encoderHiddenStates.rows(r), s(i.timestep))
            i.pooledProjections = i.pooledProjections.rows(r)
            return .sd3(i)
        case var .flux(i):
            (i.hiddenStates, i.encoderHiddenStates, i.timestep) = (i.hiddenStates.rows(r), i.encoderHiddenStates.rows(r), s(i.timestep))
            (i.pooledProjections, i.guidance) = (i.pooledProjections.rows(r), s(i.guidance))
            return .flux(i)
        }
    }
}

extension AnyTransformer {
    /// One forward pass on typed inputs of this model's class, on one rank.
    public func forward(_ inputs: ModelInputs, runtime: AttentionRuntime = SerialAttention()) throws -> Tensor {
        switch (self, inputs) {
        case let (.dit(m), .dit(i)): return try m.forward(i, runtime: runtime)
        case let (.pixart(m), .pixart(i)): return try m.forward(i, runtime: runtime)
        case let (.sd3(m), .sd3(i)): return try m.forward(i, runtime: runtime)
        case let (.flux(m), .flux(i)): return try m.forward(i, runtime: runtime)
        default: throw WeightsError.badInput(name: "inputs", reason: "inputs of another class than \(className)")
        }
    }
}
