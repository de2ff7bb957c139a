import Foundation
import Testing

@Suite("paradit forward --one-sided, on both transports", .serialized)
struct OneSidedCLITests {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-onesided-\(UUID()).safetensors").path

    @Test("local transport: ring, USP and torus (the fixtures have 2 heads) by one-sided puts match diffusers on every class",
          arguments: ["dit-b2", "pixart-alpha-b2-8x12", "sd3-b2-8x12", "flux-schnell-b2-3x5"], ["cfg=2,ring=2,one-sided", "ulysses=2,ring=2", "torus=2"])
    func local(fixture: String, spec: String) throws {
        // The flag and the per-spec form are the same switch.
        let flag = spec.hasSuffix("one-sided") ? [] : ["--one-sided"]
        #expect(runCommand(forwardArgs(fixture, output, ["--parallel", spec, "--threads", "2"] + flag)) == nil)
        #expect(try errorFromDiffusers(output, fixture: fixture) <= 1e-5)
    }

    @Test("MPI transport (RMA windows): a representative subset matches diffusers",
          arguments: [("flux-schnell-b2-3x5", "ring=2", 2), ("sd3-b2-8x12", "torus=2", 2), ("dit-b2", "cfg=2,ring=2", 4),
                      ("pixart-alpha-b2-8x12", "ulysses=2,ring=2", 4), ("sd3-b2-8x12", "cfg=2,torus=2", 4), ("flux-schnell-b2-3x5", "ring=4", 4)])
    func mpi(fixture: String, spec: String, ranks: Int) throws {
        // The 4-rank runs also emulate 2 hosts: the link model must not change any value.
        let emulate = ranks == 4 ? ["--emulate-nodes", "2"] : []
        let (status, out, _) = try mpirun(ranks, forwardArgs(fixture, output, ["--parallel", spec, "--one-sided", "--comm-report"] + emulate))
        #expect(status == 0, "\(out)")
        #expect(out.contains("rank \(ranks - 1) sent:"), "\(out)")
        #expect(try errorFromDiffusers(output, fixture: fixture) <= 1e-5)
    }

    @Test("BF16 compute through RMA windows (BF16 in the windows) equals the BF16 serial output",
          arguments: [("flux-schnell-b2-3x5", "ring=2"), ("sd3-b2-8x12", "torus=2")])
    func mpiBF16(fixture: String, spec: String) throws {
        let serial = output + ".serial.safetensors"
        defer { try? FileManager.default.removeItem(atPath: serial) }
        #expect(runCommand(forwardArgs(fixture, serial, ["--dtype", "bf16", "--threads", "2"])) == nil)
        let (status, out, _) = try mpirun(2, forwardArgs(fixture, output,
                                                         ["--dtype", "bf16", "--parallel", spec, "--one-sided"]))
        #expect(status == 0, "\(out)")
        #expect(try sampleDistance(output, serial) <= 1e-6, "\(fixture) \(spec)")
    }

    @Test("--one-sided without ring or torus is refused, naming the configuration")
    func refused() {
        let message = runCommand(forwardArgs("dit-b2", output, ["--parallel", "ulysses=2", "--one-sided"])) ?? "accepted"
        #expect(message.contains("--one-sided serves ring and torus") && message.contains("ulysses=2"), "\(message)")
    }
}
