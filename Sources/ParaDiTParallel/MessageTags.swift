/// Every point-to-point message tag of the parallel strategies, in one place, so that no two
/// exchanges can match each other's messages, whichever communicators they end up sharing.
public enum MessageTag {
    /// Ring attention: a K|V shard passed to the next rank.
    public static let ringKV = 7101
    /// Torus attention: a shifted round's q|k|v blocks, and the outputs returned to their owners.
    public static let torusRound = 7201, torusReturn = 7202
    /// PipeFusion: a patch's activations to the next stage, and the new latents back to stage 0.
    public static let pipefusionActivations = 7301, pipefusionLatents = 7302
    /// Patch-parallel VAE: halo rows to the band above and to the band below.
    public static let haloUp = 7401, haloDown = 7402

    public static let all = [ringKV, torusRound, torusReturn, pipefusionActivations, pipefusionLatents, haloUp, haloDown]
}
