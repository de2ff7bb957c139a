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

    /// A blocking MPI call spun a core forever on a stopped peer; now the others poll, time out
    /// naming the operation and the ranks they waited for, and end the job.
    @Test("a stopped rank (SIGSTOP) makes the others time out and end the job, naming the operation")
    func stoppedRank() throws {
        let (status, output, seconds) = try mpirun(3, ["selftest", "comm", "--stall-rank", "1", "--comm-timeout", "2"])
        #expect(status != 0)
        #expect(output.contains("timed out after 2.0 s in MPI_Iallgatherv, waiting for rank(s) ["), "\(output)")
        #expect(seconds < 30)
    }

    @Test("--trace under mpirun writes one file per process, with or without .json")
    func tracePerRank() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-trace-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["t", "u.json"] {
            let (status, output, _) = try mpirun(2, ["forward", "--model", "\(fixtureRoot)/dit-b2/model", "--inputs",
                                                     "\(fixtureRoot)/dit-b2/inputs.safetensors", "--output", "\(dir)/o.safetensors",
                                                     "--parallel", "ulysses=2", "--trace", "\(dir)/\(name)"])
            #expect(status == 0, "\(output)")
        }
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        #expect(files.isSuperset(of: ["t.rank0.json", "t.rank1.json", "u.rank0.json", "u.rank1.json"]), "\(files)")
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

@Suite("Local transport timeouts")
struct LocalTimeoutTests {
    @Test("a stalled rank thread makes the others fail after --comm-timeout, naming it")
    func stalledThread() throws {
        let start = Date()
        let (status, output) = try runParadit(["selftest", "comm", "--world", "3", "--stall-rank", "1", "--comm-timeout", "1"])
        #expect(status == 1)
        #expect(output.contains("rank 0 timed out after 1.0 s in allGather, waiting for rank(s) [1]"), "\(output)")
        #expect(Date().timeIntervalSince(start) < 10)
    }
}

@Suite("OpenBLAS kernels")
struct BLASCoreTests {
    /// OpenBLAS 0.3.21 takes some virtual Xeons for a Prescott (SSE3) and ran GEMM 4.8× slower; the
    /// executable restarts itself with the right core named.
    @Test("the executable never runs OpenBLAS's pre-AVX2 kernels on a CPU with AVX2")
    func core() throws {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let (status, output) = try runParadit(["bench", "kernels", "--only", "gemm", "--runs", "1", "--warmup", "0", "--threads", "1"])
        #expect(status == 0, "\(output)")
        let line = output.split(separator: "\n").first { $0.hasPrefix("machine:") }.map(String.init) ?? ""
        #expect(line.contains("(core "), "\(output)")
        if info.contains(" avx2") { #expect(!["Prescott", "Core2", "Nehalem"].contains { line.contains("(core \($0))") }, "\(line)") }
    }
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
