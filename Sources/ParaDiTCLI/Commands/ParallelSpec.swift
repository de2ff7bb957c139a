import ArgumentParser

/// `--parallel cfg=2,ulysses=2,ring=2,pipefusion=2`: the degree of each parallel method.
struct ParallelSpec: ExpressibleByArgument, Equatable, CustomStringConvertible {
    static let methods = ["cfg", "ulysses", "ring", "pipefusion", "distrifusion", "torus"]
    var degrees: [String: Int] = [:]
    /// `--parallel auto`: the planner picks the degrees for the world and the model.
    var auto = false
    /// `ring=2,one-sided`: ring or torus by one-sided puts (like `--one-sided`, for one spec of several).
    var oneSided = false

    init() {}

    init(degrees: [String: Int]) { self.degrees = degrees }

    init?(argument: String) {
        if argument == "serial" { return }
        if argument == "auto" { auto = true; return }
        for part in argument.split(separator: ",", omittingEmptySubsequences: false) {
            if part == "one-sided" { oneSided = true; continue }
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, Self.methods.contains(kv[0]), let d = Int(kv[1]), d >= 1, degrees[kv[0]] == nil else { return nil }
            degrees[kv[0]] = d
        }
    }

    static var defaultValueDescription: String { "serial" }

    var isSerial: Bool { degrees.values.allSatisfy { $0 == 1 } }
    /// The ranks the degrees multiply to; nil past `maxRanks` (or past Int: no overflow trap).
    var worldSize: Int? {
        degrees.values.reduce(Optional(1)) { w, d in
            guard let w else { return nil }
            let (p, overflow) = w.multipliedReportingOverflow(by: d)
            return overflow || p > Self.maxRanks ? nil : p
        }
    }

    /// More ranks than any run of this engine uses; a larger product is a typo, refused up front.
    static let maxRanks = 1 << 16
    var description: String {
        auto ? "auto" : isSerial ? "serial"
            : degrees.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + (oneSided ? ",one-sided" : "")
    }
}
