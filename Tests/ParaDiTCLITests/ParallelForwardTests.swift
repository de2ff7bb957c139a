import Foundation
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// Relative L2 distance of `path`'s "sample" from the fixture's diffusers output.
func errorFromDiffusers(_ path: String, fixture: String) throws -> Double {
    try sampleDistance(path, "\(fixtureRoot)/\(fixture)/output.safetensors")
}

/// Relative L2 distance of `path`'s "sample" from `reference`'s.
func sampleDistance(_ path: String, _ reference: String) throws -> Double {
    let got = try SafeTensorsFile(path: path).tensor("sample").scalars
    let expected = try SafeTensorsFile(path: reference).tensor("sample").scalars
    guard got.count == expected.count else { return .infinity }
    let num = zip(got, expected).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
    return (num / expected.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
}

func forwardArgs(_ fixture: String, _ output: String, _ extra: [String]) -> [String] {
    ["forward", "--model", "\(fixtureRoot)/\(fixture)/model", "--inputs", "\(fixtureRoot)/\(fixture)/inputs.safetensors",
     "--output", output] + extra
}

@Suite("paradit forward --parallel, on both transports", .serialized)
struct ParallelForwardTests {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-par-\(UUID()).safetensors").path

    @Test("local transport: every class under cfg·ulysses·ring matches diffusers",
          arguments: ["dit-b2", "pixart-alpha-b2-8x12", "sd3-b2-8x12", "flux-schnell-b2-3x5"])
    func local(fixture: String) throws {
        #expect(runCommand(forwardArgs(fixture, output, ["--parallel", "cfg=2,ulysses=2,ring=2", "--threads", "2"])) == nil)
        #expect(try errorFromDiffusers(output, fixture: fixture) <= 1e-5)
    }

    @Test("PipeFusion passes the whole image through its stages: every class matches diffusers",
          arguments: ["dit-b2", "pixart-alpha-b2-8x12", "sd3-b2-8x12", "flux-schnell-b2-3x5"])
    func pipefusion(fixture: String) throws {
        #expect(runCommand(forwardArgs(fixture, output, ["--parallel", "pipefusion=2,ulysses=2", "--patches", "2", "--threads", "2"])) == nil)
        #expect(try errorFromDiffusers(output, fixture: fixture) <= 1e-5)
    }

    /// Per-token quantization (or rounding) and per-row sums make a shard's rows what they are serially.
    @Test("int8-dynamic weights and bf16 compute: the exact methods give the serial output of the same type",
          arguments: [("pixart-alpha-b2-8x12", "cfg=2,ulysses=2,ring=2", false),
                      ("flux-schnell-b2-3x5", "ulysses=2,ring=2", false),
                      ("sd3-b2-8x12", "ulysses=2", true), ("flux-schnell-b2-3x5", "ring=2", true)],
                     ["int8-dynamic", "bf16"])
    func narrowCompute(run: (fixture: String, spec: String, mpi: Bool), type: String) throws {
        let (fixture, spec, mpi) = run
        let dtype = type == "bf16" ? ["--dtype", "bf16"] : ["--weights-dtype", type]
        let serial = output + ".serial.safetensors"
        defer { try? FileManager.default.removeItem(atPath: serial) }
        #expect(runCommand(forwardArgs(fixture, serial, dtype + ["--threads", "2"])) == nil)
        if mpi {
            let (status, out, _) = try mpirun(2, forwardArgs(fixture, output, dtype + ["--parallel", spec]))
            #expect(status == 0, "\(out)")
        } else {
            #expect(runCommand(forwardArgs(fixture, output, dtype + ["--parallel", spec, "--threads", "2"])) == nil)
        }
        #expect(try sampleDistance(output, serial) <= 1e-6, "\(fixture) \(spec)")
        #expect(try errorFromDiffusers(serial, fixture: fixture) > 1e-4, "\(dtype) must differ from Float32")
    }

    @Test("MPI transport: a representative subset matches diffusers",
          arguments: [("sd3-b2-8x12", "ulysses=2", 2), ("flux-schnell-b2-3x5", "ring=2", 2), ("pixart-alpha-b2-8x12", "cfg=2,ulysses=2", 4),
                      ("dit-b2", "cfg=2,ring=2", 4), ("flux-schnell-b2-3x5", "ulysses=2,ring=2", 4), ("sd3-b2-8x12", "distrifusion=2", 2),
                      ("sd3-b2-8x12", "torus=2", 2), ("pixart-alpha-b2-8x12", "cfg=2,torus=2", 4), ("dit-b2", "pipefusion=2", 2)])
    func mpi(fixture: String, spec: String, ranks: Int) throws {
        // The 4-rank runs also emulate 2 hosts: the link model must not change any value.
        let emulate = ranks == 4 ? ["--emulate-nodes", "2"] : []
        let (status, out, _) = try mpirun(ranks, forwardArgs(fixture, output, ["--parallel", spec, "--comm-report"] + emulate))
        #expect(status == 0, "\(out)")
        #expect(out.contains("rank \(ranks - 1) sent:"), "\(out)")
        #expect(try errorFromDiffusers(output, fixture: fixture) <= 1e-5)
    }

    @Test("Wan (video: frames × rows × columns) under every exact method, no Wan-specific parallel code",
          arguments: [("cfg=2", 2), ("ulysses=3", 3), ("ring=2", 2), ("cfg=2,ulysses=3,ring=2", 12), ("torus=2", 2),
                      ("cfg=2,torus=2", 4)])
    func wan(spec: String, ranks: Int) throws {
        #expect(runCommand(forwardArgs("wan-t2v-b2-3x6x10", output, ["--parallel", spec, "--threads", "2"])) == nil)
        #expect(try errorFromDiffusers(output, fixture: "wan-t2v-b2-3x6x10") <= 1e-5)
    }

    @Test("Wan under mpirun: ulysses=3 and cfg=2,ring=2 match diffusers; PipeFusion on video is refused",
          arguments: [("ulysses=3", 3), ("cfg=2,ring=2", 4)])
    func wanMPI(spec: String, ranks: Int) throws {
        let (status, out, _) = try mpirun(ranks, forwardArgs("wan-t2v-b2-3x6x10", output, ["--parallel", spec]))
        #expect(status == 0, "\(out)")
        #expect(try errorFromDiffusers(output, fixture: "wan-t2v-b2-3x6x10") <= 1e-5)
        let refused = runCommand(forwardArgs("wan-t2v-b2-3x6x10", output, ["--parallel", "pipefusion=2"])) ?? "accepted"
        #expect(refused.contains("latent frames is not supported"), "\(refused)")
    }

    @Test("--parallel auto plans for the world and the emulated hosts, and still matches diffusers")
    func auto() throws {
        #expect(runCommand(forwardArgs("flux-schnell-b2-3x5", output, ["--parallel", "auto", "--world", "4", "--emulate-nodes", "2"])) == nil)
        #expect(try errorFromDiffusers(output, fixture: "flux-schnell-b2-3x5") <= 1e-5)
        #expect((runCommand(forwardArgs("dit-b2", output, ["--parallel", "auto"])) ?? "").contains("--parallel auto needs --world"))
    }

    @Test("a configuration that cannot work is refused with the degree to change, under MPI too")
    func refused() throws {
        let message = runCommand(forwardArgs("dit-b2", output, ["--parallel", "ulysses=4"])) ?? "accepted"
        #expect(message.contains("ulysses=4 exceeds the model's 2 attention heads"), "\(message)")
        let (status, out, _) = try mpirun(4, forwardArgs("dit-b2", output, ["--parallel", "ulysses=4"]))
        #expect(status != 0 && out.contains("ulysses=4 exceeds"), "\(out)")
        #expect((runCommand(forwardArgs("dit-b2", output, ["--parallel", "ring=2", "--world", "3"])) ?? "").contains("does not match"))
        // Refused before any rank starts: no world of 10⁸ threads, no overflowing product.
        let many = runCommand(forwardArgs("dit-b2", output, ["--parallel", "ring=1000"])) ?? "accepted"
        #expect(many.contains("fewer than the 1000 sequence-parallel ranks"), "\(many)")
        let huge = runCommand(forwardArgs("dit-b2", output, ["--parallel", "ring=100000000"])) ?? "accepted"
        #expect(huge.contains("multiplies to more than 65536 ranks"), "\(huge)")
        let overflow = runCommand(forwardArgs("dit-b2", output, ["--parallel", "ring=4294967296,ulysses=4294967296"])) ?? "accepted"
        #expect(overflow.contains("multiplies to more than 65536 ranks"), "\(overflow)")
        // PipeFusion's stages and patches are checked against the model as generate checks them.
        for (args, expected) in [(["pipefusion=9"], "at least one block per stage"),
                                 (["pipefusion=2", "--stage-blocks", "5,5"], "summing to the model's 2 blocks"),
                                 (["pipefusion=2", "--patches", "100"], "do not fit")] {
            let message = runCommand(forwardArgs("dit-b2", output, ["--parallel"] + args)) ?? "accepted"
            #expect(message.contains(expected), "\(args): \(message)")
        }
    }
}
