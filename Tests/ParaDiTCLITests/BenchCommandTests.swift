import Foundation
import ParaDiTCLI
import Testing

@Suite("paradit bench kernels")
struct BenchCommandTests {
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
        #expect(attention.allSatisfy { ($0["fraction_of_gemm"] as? Double ?? 0) > 0 })
        let memory = try #require(json["memory_bound"] as? [[String: Any]])
        #expect(Set(memory.compactMap { $0["kernel"] as? String }) == ["layernorm", "gelu-tanh", "gelu-erf", "silu"])
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
