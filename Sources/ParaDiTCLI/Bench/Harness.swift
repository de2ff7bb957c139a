import Foundation
import Synchronization
import ParaDiTTensor

// The benchmark harness shared by every `paradit bench` suite: timing with warm-up and a median
// over several runs, the machine description, the table on stdout and the JSON file.

/// Timings of one case, in seconds.
struct Timing: Codable {
    var median: Double
    var min: Double
    var max: Double
    var runs: Int
}

/// Runs `body` `warmup` times untimed, then `runs` times timed.
func measure(warmup: Int, runs: Int, _ body: () -> Void) -> Timing {
    for _ in 0..<warmup { body() }
    var samples: [Double] = []
    for _ in 0..<runs {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return timing(samples)
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted(), mid = s.count / 2
    return s.count % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

func timing(_ samples: [Double]) -> Timing {
    Timing(median: median(samples), min: samples.min()!, max: samples.max()!, runs: samples.count)
}

/// What the figures were measured on.
struct MachineInfo: Codable {
    var cpu: String
    var logicalCores: Int
    var memoryGibibytes: Double
    var os: String
    var arch: String
    var blas: String
    var threads: Int
    var date: String

    static func current(threads: Int) -> MachineInfo {
        warnAboutBLAS()
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        var uts = utsname()
        uname(&uts)
        func field<T>(_ v: T) -> String { withUnsafeBytes(of: v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        return MachineInfo(
            cpu: model, logicalCores: ProcessInfo.processInfo.activeProcessorCount,
            memoryGibibytes: (Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824 * 10).rounded() / 10,
            os: "\(field(uts.sysname)) \(field(uts.release))", arch: field(uts.machine),
            blas: BLAS.description, threads: threads, date: ISO8601DateFormatter().string(from: Date()))
    }
}

/// A printable, serialisable table: one row per case, string cells for the terminal, numbers in JSON.
struct ResultTable {
    var title: String
    var columns: [String]
    var rows: [[String]] = []

    mutating func add(_ cells: [String]) { rows.append(cells) }

    func render() -> String {
        let widths = columns.indices.map { c in ([columns[c]] + rows.map { $0[c] }).map(\.count).max()! }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).enumerated().map { i, cw in
                i == 0 ? cw.0.padding(toLength: cw.1, withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: cw.1 - cw.0.count) + cw.0
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "─", count: widths.reduce(0, +) + 2 * (widths.count - 1))
        return ([title, line(columns), rule] + rows.map(line)).joined(separator: "\n")
    }
}

/// Says once per process, on stderr, when OpenBLAS runs kernels far below what the CPU can do.
func warnAboutBLAS() {
    guard !warnedAboutBLAS.exchange(true, ordering: .relaxed), let warning = BLAS.coreWarning else { return }
    FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
}

private let warnedAboutBLAS = Atomic<Bool>(false)

/// Formats a figure with 3 significant digits or so.
func fmt(_ v: Double, digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }

/// Writes `report` as pretty JSON to `path` and says so.
func writeJSON<T: Encodable>(_ report: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    try encoder.encode(report).write(to: URL(fileURLWithPath: path), options: .atomic)
    print("wrote \(path)")
}
