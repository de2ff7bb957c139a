import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// `config.json` of `AutoencoderKL`: the keys the decoder needs, with diffusers' defaults.
/// `force_upcast`, `sample_size` and `latents_mean`/`latents_std` do not affect decoding here
/// (everything runs in float32; the DiT, PixArt, SD3 and Flux pipelines use neither statistic).
public struct AutoencoderKLConfig: Decodable, Sendable {
    public var outChannels: Int
    public var upBlockTypes: [String]
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var actFn: String
    public var latentChannels: Int
    public var normNumGroups: Int
    public var scalingFactor: Double
    /// SD3 and Flux; nil for SD, DiT and PixArt VAEs.
    public var shiftFactor: Double?
    public var usePostQuantConv: Bool
    public var midBlockAddAttention: Bool

    enum CodingKeys: String, CodingKey {
        case outChannels, upBlockTypes, blockOutChannels, layersPerBlock, actFn, latentChannels, normNumGroups
        case scalingFactor, shiftFactor, usePostQuantConv, midBlockAddAttention
    }

    public init(from decoder: Swift.Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        outChannels = try c.value(.outChannels, default: 3)
        upBlockTypes = try c.value(.upBlockTypes, default: ["UpDecoderBlock2D"])
        blockOutChannels = try c.value(.blockOutChannels, default: [64])
        layersPerBlock = try c.value(.layersPerBlock, default: 1)
        actFn = try c.value(.actFn, default: "silu")
        latentChannels = try c.value(.latentChannels, default: 4)
        normNumGroups = try c.value(.normNumGroups, default: 32)
        scalingFactor = try c.value(.scalingFactor, default: 0.18215)
        shiftFactor = try c.decodeIfPresent(Double.self, forKey: .shiftFactor)
        usePostQuantConv = try c.value(.usePostQuantConv, default: true)
        midBlockAddAttention = try c.value(.midBlockAddAttention, default: true)
    }

    /// What this decoder supports, checked before any weight is read: the reason it does not, or nil.
    func unsupported() -> String? {
        if blockOutChannels.isEmpty || blockOutChannels.contains(where: { $0 <= 0 }) {
            return "block_out_channels \(blockOutChannels) must be a non-empty list of positive widths"
        }
        if upBlockTypes.count != blockOutChannels.count || upBlockTypes.contains(where: { $0 != "UpDecoderBlock2D" }) {
            return "up_block_types \(upBlockTypes): only UpDecoderBlock2D, one per block_out_channels entry, is supported"
        }
        if let width = blockOutChannels.first(where: { normNumGroups <= 0 || $0 % normNumGroups != 0 }) {
            return "norm_num_groups \(normNumGroups) does not divide the block width \(width)"
        }
        if actFn != "silu" && actFn != "swish" { return "act_fn \"\(actFn)\": only silu is supported" }
        if layersPerBlock < 0 || latentChannels <= 0 || outChannels <= 0 {
            return "layers_per_block, latent_channels and out_channels must be positive"
        }
        if scalingFactor == 0 || !scalingFactor.isFinite { return "scaling_factor \(scalingFactor) must be finite and non-zero" }
        return nil
    }

    /// Pixels per latent pixel along each side: 2^(blocks − 1), 8 for every released VAE.
    public var upscaleFactor: Int { 1 << (blockOutChannels.count - 1) }
}

/// How a pipeline takes its latents back to the VAE's space before `vae.decode`.
public enum LatentScaling: Sendable {
    /// `latents / scaling_factor (+ shift_factor)`: PixArt, SD3 and Flux.
    case divide
    /// `1 / scaling_factor * latents (+ shift_factor)`: DiT (the reciprocal rounded to float32
    /// first, so results can differ from `.divide` in the last bit).
    case reciprocal
}

/// diffusers `AutoencoderKL`, decoder only: `post_quant_conv` (when the config uses it) and the
/// `Decoder`. The checkpoint's encoder and `quant_conv` tensors are left unread on purpose; any
/// other tensor the decoder does not use is still an error.
public final class AutoencoderKL {
    public let config: AutoencoderKLConfig
    package let postQuantConv: Conv2d?
    package let decoder: Decoder

    /// Key prefixes of the encoding half, present in real checkpoints and never needed to decode.
    static let encoderPrefixes = ["encoder.", "quant_conv."]

    /// Opens a diffusers VAE folder (`…/vae`): config.json naming AutoencoderKL and its weights.
    public static func load(directory: String) throws -> AutoencoderKL {
        let file = try ConfigFile(directory: directory)
        guard file.className == "AutoencoderKL" else {
            throw WeightsError.badConfig(path: file.path, reason: "_class_name is \(file.className), expected AutoencoderKL")
        }
        let config = try file.decode(AutoencoderKLConfig.self)
        if let reason = config.unsupported() { throw WeightsError.badConfig(path: file.path, reason: reason) }
        let weights = Weights(checkpoint: try Checkpoint(directory: directory))
        let model = try AutoencoderKL(config: config, weights: weights)
        try checkDecoderUsedAll(weights)
        return model
    }

    public init(config: AutoencoderKLConfig, weights w: Weights) throws {
        if let reason = config.unsupported() { throw WeightsError.badConfig(path: "config.json", reason: reason) }
        self.config = config
        let c = config.latentChannels
        postQuantConv = config.usePostQuantConv ? try Conv2d(w.scope("post_quant_conv"), in: c, out: c, kernel: 1) : nil
        decoder = try Decoder(w.scope("decoder"), config: config)
    }

    /// `checkAllUsed`, except for the encoder's tensors.
    static func checkDecoderUsedAll(_ weights: Weights) throws {
        do {
            try weights.checkAllUsed()
        } catch let WeightsError.unusedTensors(keys, file) {
            let unexpected = keys.filter { key in !encoderPrefixes.contains { key.hasPrefix($0) } }
            if !unexpected.isEmpty { throw WeightsError.unusedTensors(keys: unexpected, file: file) }
        }
    }

    /// The image of pipeline latents [B, latent_channels, h, w]: they are taken back to the VAE's
    /// space as the pipeline does (`scaling`), then decoded. Returns [B, out_channels,
    /// h·upscaleFactor, w·upscaleFactor], nominally in [−1, 1] and not clamped.
    public func decode(latents: Tensor, scaling: LatentScaling = .divide) throws -> Tensor {
        try decodeUnscaled(unscale(latents, scaling: scaling))
    }

    /// What diffusers' `vae.decode(z)` returns for z already in the VAE's space.
    public func decodeUnscaled(_ z: Tensor) throws -> Tensor {
        try checkLatents(z, name: "z")
        let h = postQuantConv.map { $0(z) } ?? z
        return decoder(h)
    }

    /// The pipeline's `latents / scaling_factor + shift_factor` (or DiT's reciprocal form), in
    /// float32 one operation at a time as torch computes it.
    public func unscale(_ latents: Tensor, scaling: LatentScaling = .divide) throws -> Tensor {
        try checkLatents(latents, name: "latents")
        let out = Tensor(uninitialized: latents.shape)
        let divisor = Float(config.scalingFactor), factor = Float(1 / config.scalingFactor)
        let shift = config.shiftFactor.map(Float.init)
        let (src, dst) = (latents.data, out.data)
        withExtendedLifetime(latents) {
            ThreadPool.current.parallelChunks(latents.count, minChunk: 1 << 14) { range, _ in
                for i in range {
                    let v = scaling == .divide ? src[i] / divisor : factor * src[i]
                    dst[i] = shift.map { v + $0 } ?? v
                }
            }
        }
        return out
    }

    package func checkLatents(_ x: Tensor, name: String) throws {
        guard x.rank == 4, x.size(0) > 0, x.size(2) > 0, x.size(3) > 0 else {
            throw WeightsError.badInput(name: name, reason: "has shape \(x.shape), expected [B, \(config.latentChannels), h, w] with every size positive")
        }
        guard x.size(1) == config.latentChannels else {
            throw WeightsError.badInput(name: name, reason: "has \(x.size(1)) channels, the VAE expects latent_channels = \(config.latentChannels)")
        }
    }
}
