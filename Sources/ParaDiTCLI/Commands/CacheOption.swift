import Foundation
import ArgumentParser
import ParaDiTModels
import ParaDiTParallel

extension CacheSpec: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

/// Steps as a step cache counts them: whole, or with the patches' shares under PipeFusion ("7.5").
func stepCount(_ steps: Double) -> String {
    steps == steps.rounded() ? String(Int(steps)) : String(format: "%.2f", steps)
}
