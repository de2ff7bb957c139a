import Foundation
import ParaDiTModels
import ParaDiTWeights

/// A pipeline of a real architecture with random weights, built in memory: what `paradit generate`
/// runs without --model, so the main command needs no download. Its images are noise-like:
/// they show the engine working, not a trained model.
public enum DemoPipeline {
    public static let name = "dit-xl-2-256 (random weights)"

    /// DiT-XL/2 at 256 px with the SD VAE's decoder and DiT's DDIM scheduler.
    public static func make() throws -> TextToImagePipeline {
        let transformer = try ModelRegistry.build(config: config("""
            {"_class_name": "DiTTransformer2DModel", "num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4,
             "out_channels": 8, "num_layers": 28, "sample_size": 32, "patch_size": 2, "num_embeds_ada_norm": 1000}
            """), weights: Weights(randomSeed: 1))
        let vae = try AutoencoderKL(config: config("""
            {"_class_name": "AutoencoderKL", "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
             "latent_channels": 4, "norm_num_groups": 32, "scaling_factor": 0.18215,
             "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}
            """).decode(AutoencoderKLConfig.self), weights: Weights(randomSeed: 2))
        let scheduler = try config("""
            {"_class_name": "DDIMScheduler", "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
             "clip_sample": false, "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": true, "steps_offset": 0}
            """)
        return try TextToImagePipeline(folder: PipelineFolder(className: "DiTPipeline", description: name),
                                       transformer: transformer, vae: vae, schedulerConfig: scheduler)
    }

    static func config(_ json: String) throws -> ConfigFile { try ConfigFile(data: Data(json.utf8), path: "preset \(name)") }
}
