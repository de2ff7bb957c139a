import ArgumentParser
import Foundation
import ParaDiTModels
import ParaDiTWeights

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a diffusers model folder: class, architecture, parameters, stored dtypes.",
        discussion: "Example: paradit inspect --model dit/transformer")

    @Option(help: "The diffusers model folder.")
    var model: String

    func run() throws {
        let file = try ConfigFile(directory: model)
        let checkpoint = try Checkpoint(directory: model)
        let counts = checkpoint.dtypeCounts
        let total = counts.values.reduce(0, +)
        print("class:       \(file.className)")
        if file.className == "DiTTransformer2DModel" {
            let c = try file.decode(DiTConfig.self)
            print("blocks:      \(c.numLayers) × adaLN-zero (\(c.numAttentionHeads) heads × \(c.attentionHeadDim), width \(c.innerDim))")
            print("latent:      \(c.inChannels) → \(c.outputChannels) channels, patch \(c.patchSize), sample size \(c.sampleSize)")
            print("classes:     \(c.numEmbedsAdaNorm)")
        }
        print("parameters:  \(total) (\(fmt(Double(total) / 1e6, digits: 2)) M) in \(checkpoint.names.count) tensors")
        print("stored as:   " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
}
