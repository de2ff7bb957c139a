import ArgumentParser

/// `--parallel cfg=2,ulysses=2,ring=2,pipefusion=2`: the degree of each parallel method.
/// Until the parallel layer lands only the serial spec (every degree 1) can run.
struct ParallelSpec: ExpressibleByArgument, Equatable, CustomStringConvertible {
    static let methods = ["cfg", "ulysses", "ring", "pipefusion", "distrifusion", "torus"]
    var degrees: [String: Int] = [:]

    init() {}

    init?(argument: String) {
        if argument == "serial" { return }
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, Self.methods.contains(kv[0]), let d = Int(kv[1]), d >= 1, degrees[kv[0]] == nil else { return nil }
            degrees[kv[0]] = d
        }
    }

    static var defaultValueDescription: String { "serial" }

    var isSerial: Bool { degrees.values.allSatisfy { $0 == 1 } }
    var worldSize: Int { degrees.values.reduce(1, *) }
    var description: String {
        isSerial ? "serial" : degrees.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// Refuses what cannot run yet, naming the spec.
    func requireRunnable() throws {
        guard isSerial else {
            throw ValidationError("--parallel \(description): parallel methods are not available in this build yet; "
                                  + "omit --parallel (or pass 'serial') to run on one rank")
        }
    }
}
