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

    @OptionGroup var weights: WeightsOption

    func run() throws {
        let (transformer, _, _, weightBytes) = try ModelRegistry.load(directory: model, keepingBlocks: nil, weightsDType: weights.dtype)
        let checkpoint = try Checkpoint(directory: model)
        let counts = checkpoint.dtypeCounts
        let total = counts.values.reduce(0, +)
        print("class:       \(transformer.className)")
        for line in transformer.architecture { print("             \(line)") }
        print("parameters:  \(total) (\(fmt(Double(total) / 1e6, digits: 2)) M) in \(checkpoint.names.count) tensors")
        print("stored as:   " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print("resident:    linear weights \(fmt(Double(weightBytes) / 1_048_576, digits: 2)) MiB as --weights-dtype \(weights.dtype.rawValue)")
    }
}
