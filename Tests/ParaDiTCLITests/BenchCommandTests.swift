import Foundation
import ParaDiTCLI
import ParaDiTTensor
import Testing

@Suite("paradit bench kernels")
struct BenchCommandTests {
    @Test("bench cache times generations with and without each cache, alternating, and reports what they cost")
    func cache() throws {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-cache-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: json) }
        // Bit-equal runs need OpenBLAS single-threaded throughout (the kernel bench threads it).
        BLAS.multiThreadLock.lock()
        defer { BLAS.multiThreadLock.unlock() }
        #expect(runCommand(["bench", "cache", "--runs", "2", "--steps", "4", "--per-class", "1", "--cache", "fbcache:1e9",
                            "--cache", "teacache:0", "--json", json]) == nil)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
        let rows = try #require(report["rows"] as? [[String: Any]])
        #expect(rows.map { $0["cache"] as? String } == ["none", "fbcache:1000000000.0", "teacache:0.0"], "\(rows)")
        #expect(rows[1]["steps_skipped"] as? Int == 3 && rows[2]["steps_skipped"] as? Int == 0, "\(rows)")
        #expect(rows[2]["latent_psnr"] as? Double == 999 && (rows[1]["latent_psnr"] as? Double ?? 999) < 999, "\(rows)")
        #expect((rows[1]["seconds"] as? [String: Any])?["runs"] as? Int == 2)
    }

    @Test("writes a JSON report with machine, config and every case")
    func jsonReport() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-bench-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var command = try ParaDiTCommand.parseAsRoot(
            ["bench", "kernels", "--threads", "2", "--runs", "1", "--warmup", "0", "--seq-lens", "64", "--json", path])
        try command.run()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        #expect(json["suite"] as? String == "kernels")
        let machine = try #require(json["machine"] as? [String: Any])
        #expect(machine["threads"] as? Int == 2)
        #expect((machine["blas"] as? String)?.contains("OpenBLAS") == true)
        let gemm = try #require(json["gemm"] as? [[String: Any]])
        #expect(gemm.count == 3)
        #expect(gemm.allSatisfy { ($0["engine_gflops"] as? Double ?? 0) > 0 && ($0["engine_over_cblas"] as? Double ?? 0) > 0 })
        let attention = try #require(json["attention"] as? [[String: Any]])
        #expect(attention.map { $0["head_dim"] as? Int } == [64, 128])
        #expect(attention.allSatisfy { row in
            ["fraction_of_gemm", "gflops", "bf16_gflops", "bf16_over_f32"].allSatisfy { (row[$0] as? Double ?? 0) > 0 }
        })
        let memory = try #require(json["memory_bound"] as? [[String: Any]])
        #expect(Set(memory.compactMap { $0["kernel"] as? String }) == ["layernorm", "gelu-tanh", "gelu-erf", "silu"])
        let linear = try #require(json["linear"] as? [[String: Any]])
        #expect(linear.count == 3 && linear.allSatisfy { row in
            ["f32_gflops", "bf16_gflops", "int8_gflops", "bf16_over_f32", "int8_over_f32"]
                .allSatisfy { (row[$0] as? Double ?? 0) > 0 }
        }, "\(linear)")
        #expect(["int8_kernel", "bf16_kernel", "attention_kernel", "bf16_attention_kernel"]
            .allSatisfy { !(json[$0] as? String ?? "").isEmpty })
    }

    @Test("--only limits the suites")
    func onlyAttention() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-bench-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var command = try ParaDiTCommand.parseAsRoot(
            ["bench", "kernels", "--runs", "1", "--warmup", "0", "--seq-lens", "32", "--only", "attention", "--json", path])
        try command.run()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        #expect((json["gemm"] as? [Any])?.isEmpty == true)
        #expect((json["attention"] as? [Any])?.count == 2)
    }

    @Test("bad options are refused with a message naming the option", arguments: [
        (["bench", "kernels", "--threads", "0"], "--threads"),
        (["bench", "kernels", "--runs", "0"], "--runs"),
        (["bench", "kernels", "--only", "fft"], "fft"),
        (["bench", "forward", "--preset", "dit-xl-2-256", "--dtype", "bf16", "--weights-dtype", "int8"],
         "--dtype bf16"),
        (["bench", "forward", "--preset", "dit-xl-2-256", "--dtype", "f16"], "f16"),
        (["bench", "parallel", "--preset", "dit-xl-2-256", "--dtype", "bf16", "--weights-dtype", "int8-dynamic"],
         "not int8-dynamic"),
        (["bench", "encode", "--preset", "clip-l", "--weights-dtype", "int8-dynamic"], "--weights-dtype int8"),
        (["forward", "--model", "m", "--inputs", "i", "--output", "o", "--dtype", "bf16", "--weights-dtype", "f16"],
         "use --weights-dtype stored or bf16 (not f16)"),
    ])
    func badOptions(args: [String], mentions: String) {
        do {
            _ = try ParaDiTCommand.parseAsRoot(args)
            Issue.record("\(args) was accepted")
        } catch {
            #expect(ParaDiTCommand.message(for: error).contains(mentions), "\(ParaDiTCommand.message(for: error))")
        }
    }
}

@Suite("paradit bench comm")
struct BenchCommTests {
    @Test("reports every operation and size, with a trace and byte counts")
    func report() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-comm-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var command = try ParaDiTCommand.parseAsRoot(
            ["bench", "comm", "--world", "3", "--sizes", "1", "100", "--runs", "2", "--warmup", "0",
             "--emulate-nodes", "3", "--inter-node-gbps", "100", "--trace", "\(dir)/t.json", "--json", "\(dir)/r.json"])
        try command.run()
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/r.json"))) as! [String: Any]
        let cases = try #require(json["cases"] as? [[String: Any]])
        #expect(cases.count == 6)
        #expect(cases.contains { $0["operation"] as? String == "allToAll" && $0["floats_per_rank"] as? Int == 100
                                 && $0["bytes_received_per_rank"] as? Int == 800 })
        let trace = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/t.json"))) as! [String: Any]
        #expect((trace["traceEvents"] as? [Any])?.isEmpty == false)
    }

    @Test("a world that does not split over the emulated nodes is refused")
    func badNodes() {
        #expect(runCommand(["bench", "comm", "--world", "3", "--emulate-nodes", "2"])?.contains("--emulate-nodes") == true)
    }
}

@Suite("paradit selftest comm (local transport)")
struct SelftestCommTests {
    @Test("all checks pass at 1 to 8 ranks", arguments: Array(1...8))
    func passes(ranks: Int) {
        #expect(runCommand(["selftest", "comm", "--world", "\(ranks)"]) == nil)
    }

    @Test("an injected failure on one rank fails the run instead of hanging")
    func injectedFailure() {
        let start = Date()
        #expect(runCommand(["selftest", "comm", "--world", "4", "--fail-rank", "1"])?.contains("injected failure on rank 1") == true)
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test("an injected failure must name a rank that exists (else the run would pass untested)")
    func failRankOutOfRange() throws {
        let local = runCommand(["selftest", "comm", "--world", "2", "--fail-rank", "5"]) ?? "accepted"
        #expect(local.contains("--fail-rank 5 is not a rank of 2"), "\(local)")
        let kill = runCommand(["selftest", "comm", "--world", "2", "--kill-rank", "1"]) ?? "accepted"
        #expect(kill.contains("--kill-rank ends a process: it needs mpirun"), "\(kill)")
        let (status, out, _) = try mpirun(2, ["selftest", "comm", "--fail-rank", "5"])
        #expect(status != 0 && out.contains("--fail-rank 5 is not a rank of 2"), "\(out)")
    }
}
