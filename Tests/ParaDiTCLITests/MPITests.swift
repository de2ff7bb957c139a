import Foundation
import Testing

/// The `paradit` executable built beside this test bundle.
let paraditBinary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("paradit").path

/// Runs `mpirun -np n paradit args…`; returns (exit status, output, seconds).
func mpirun(_ n: Int, _ args: [String], timeout: Double = 60) throws -> (Int32, String, Double) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["mpirun", "--oversubscribe", "-np", "\(n)", paraditBinary] + args
    var env = ProcessInfo.processInfo.environment
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
    process.environment = env
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    let start = Date()
    try process.run()
    let killer = DispatchWorkItem { process.terminate() }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    killer.cancel()
    return (process.terminationStatus, output, Date().timeIntervalSince(start))
}

@Suite("MPI transport under mpirun", .serialized)
struct MPITests {
    @Test("the paradit executable is built beside the tests")
    func binaryExists() {
        #expect(FileManager.default.isExecutableFile(atPath: paraditBinary), "\(paraditBinary)")
    }

    @Test("every collective equals its definition", arguments: Array(1...8))
    func selftest(ranks: Int) throws {
        let (status, output, _) = try mpirun(ranks, ["selftest", "comm"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("MPI transport, \(ranks) ranks: \(10 * ranks) passed, 0 failed"), "\(output)")
    }

    @Test("bench comm runs under mpirun and reports from rank 0")
    func benchComm() throws {
        let (status, output, _) = try mpirun(3, ["bench", "comm", "--sizes", "1", "64", "--runs", "1", "--warmup", "0"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("MPI transport, 3 ranks on 1 node(s)") && output.contains("ring send/recv"), "\(output)")
    }

    @Test("a killed rank ends the whole job quickly instead of hanging the others")
    func killedRank() throws {
        let (status, _, seconds) = try mpirun(4, ["selftest", "comm", "--kill-rank", "1"])
        #expect(status != 0)
        #expect(seconds < 30)
    }

    @Test("a failing rank ends the whole job quickly, naming itself")
    func failingRank() throws {
        let (status, output, seconds) = try mpirun(4, ["selftest", "comm", "--fail-rank", "2"])
        #expect(status != 0)
        #expect(output.contains("rank 2 failed: injected failure"), "\(output)")
        #expect(seconds < 30)
    }

    @Test("emulated hosts under mpirun: an all-gather across them takes the modelled link's time")
    func emulatedLinks() throws {
        // 1 M floats per rank from the other host at 1 Gbit/s: 32 ms.
        let (status, output, _) = try mpirun(2, ["bench", "comm", "--sizes", "1048576", "--runs", "1", "--warmup", "0",
                                                 "--emulate-nodes", "2", "--inter-node-gbps", "1"])
        #expect(status == 0, "\(output)")
        let row = output.split(separator: "\n").first { $0.hasPrefix("allGather") }.map(String.init) ?? ""
        let micros = row.split(separator: " ").compactMap { Double($0) }.dropFirst().first ?? 0
        #expect(micros >= 32_000, "\(output)")
        #expect(output.contains("2 emulated nodes at 1.0 Gbit/s"), "\(output)")
    }
}

/// Runs the paradit executable (under an address-space limit, if given); returns (exit status, stdout and stderr).
func runParadit(_ args: [String], addressSpaceKB: Int? = nil) throws -> (Int32, String) {
    let process = Process()
    if let addressSpaceKB {
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -v \(addressSpaceKB) && exec \"$0\" \"$@\"", paraditBinary] + args
    } else {
        process.executableURL = URL(fileURLWithPath: paraditBinary)
        process.arguments = args
    }
    let pipe = Pipe()
    (process.standardOutput, process.standardError) = (pipe, pipe)
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

@Suite("Exit status")
struct ExitStatusTests {
    @Test("0 success, 1 an error in one line, 64 a usage error; --help says so")
    func codes() throws {
        let (help, text) = try runParadit(["--help"])
        #expect(help == 0 && text.contains("Exit status: 0 success; 1 an error"), "\(text)")
        let (usage, _) = try runParadit(["generate", "--no-such-option"])
        #expect(usage == 64)
        let (error, message) = try runParadit(["inspect", "--model", "/nonexistent"])
        #expect(error == 1 && message.split(separator: "\n").count == 1, "\(message)")
    }
}
