import Foundation
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights
import Testing

/// A denoising loop for the test family: x ← x − 0.1 · output at each timestep, per band of token
/// rows (elementwise, so stepping the bands one by one is the whole step).
final class EulerLoop: PatchLoop {
    let timesteps: [Float] = [900, 600, 300]
    let bands: [Range<Int>]
    let gridRows: Int, gridColumns: Int
    private(set) var latents: Tensor

    init(latents: Tensor, gridRows: Int, gridColumns: Int, patches: Int) {
        (self.latents, self.gridRows, self.gridColumns) = (latents, gridRows, gridColumns)
        bands = balancedSplit(gridRows, parts: patches)
    }

    func tokens(ofBand m: Int) -> Range<Int> { (bands[m].lowerBound * gridColumns)..<(bands[m].upperBound * gridColumns) }
    func inputs(step i: Int) -> any TransformerInputs {
        TinyInputs(hiddenStates: latents.copy(), timestep: Array(repeating: timesteps[i], count: latents.size(0)))
    }

    /// Latent rows of band m (2 per token row: patch size 2).
    func rows(_ m: Int) -> Range<Int> { (2 * bands[m].lowerBound)..<(2 * bands[m].upperBound) }
    func latentBand(_ m: Int) -> Tensor { slice(latents, axis: 2, rows(m)) }

    func step(band m: Int, step i: Int, output: Tensor) throws {
        let band = latentBand(m)
        setLatentBand(m, Tensor(shape: band.shape, values: zip(band.scalars, output.scalars).map { $0 - 0.1 * $1 }))
    }

    func stepAll(step i: Int, output: Tensor) throws {
        for m in bands.indices { try step(band: m, step: i, output: slice(output, axis: 2, rows(m))) }
    }

    func setLatentBand(_ m: Int, _ band: Tensor) {
        let (b, c, h, w) = (latents.size(0), latents.size(1), latents.size(2), latents.size(3)), r = rows(m)
        var values = latents.scalars, new = band.scalars
        for n in 0..<(b * c) { for y in r { for x in 0..<w {
            values[(n * h + y) * w + x] = new[(n * r.count + y - r.lowerBound) * w + x]
        } } }
        latents = Tensor(shape: latents.shape, values: values)
        new = []
    }

    func setLatents(_ x: Tensor) { latents = x }
}

@Suite("A family defined in the tests gets every strategy through the protocol")
struct TinyFamilyTests {
    static let exact: [ParallelConfig] = [
        .init(cfg: 2), .init(ulysses: 2), .init(ring: 2), .init(ulysses: 2, ring: 2), .init(ulysses: 4), .init(ring: 4),
        .init(cfg: 2, ulysses: 2), .init(cfg: 2, ring: 2), .init(cfg: 2, ulysses: 2, ring: 2),
        .init(torus: 2), .init(ulysses: 2, torus: 2), .init(torus: 4), .init(cfg: 2, torus: 2),
        ParallelConfig(ring: 2).oneSidedCopy, ParallelConfig(ulysses: 2, ring: 2).oneSidedCopy, ParallelConfig(ulysses: 2, torus: 2).oneSidedCopy,
        // DistriFusion's first steps are synchronous (warm-up), so one forward pass is exact.
        .init(distrifusion: 2), .init(distrifusion: 4), .init(cfg: 2, distrifusion: 2),
    ]

    @Test("registered by class name: built, described and refused like a built-in family")
    func registry() throws {
        let model = try TinyDiTModel.make()
        #expect(ModelRegistry.classNames.contains("TinyDiTModel"))
        #expect(try ModelRegistry.family("TinyDiTModel").blockOfKey(ConfigFile(data: Data("{\"_class_name\": \"TinyDiTModel\"}".utf8),
                                                                                 path: "c"))("blocks.2.ff.proj.weight") == 2)
        #expect(throws: WeightsError.self) { try model.forward(any: TinyDiTModel.inputs(batch: 1, grid: (3, 5)).samples(0..<1)
                                                                  .withChannels(3)) }
    }

    @Test("exact methods equal the family's serial forward on every rank (15 tokens, 3 and 4 heads)", arguments: exact)
    func exactParity(_ config: ParallelConfig) throws {
        for heads in config.ulysses == 2 && config.torus == 1 ? [3, 4] : [4] {
            let model = try TinyDiTModel.make(heads: heads)
            let inputs = TinyDiTModel.inputs(batch: 2, grid: (3, 5))
            let (serial, ranks, _) = try TestModels.run(model, inputs, config)
            for (rank, out) in ranks.enumerated() {
                #expect(out.shape == serial.shape && out.shape == [2, 4, 6, 10])
                #expect(relativeL2(out, serial) <= 1e-5, "\(config) heads \(heads) rank \(rank)")
            }
        }
    }

    @Test("PipeFusion (and its hybrids) with warm-up ≥ steps equals the serial loop; after warm-up it is stale",
          arguments: [ParallelConfig(pipefusion: 2), .init(pipefusion: 3, patches: 3), .init(pipefusion: 2, stageBlocks: [1, 2]),
                      .init(cfg: 2, pipefusion: 2), .init(ulysses: 2, pipefusion: 2), .init(ring: 2, pipefusion: 2, patches: 3)])
    func pipefusion(_ config: ParallelConfig) throws {
        let model = try TinyDiTModel.make()
        let start = TinyDiTModel.inputs(batch: 2, grid: (4, 5)).hiddenStates
        let serial = EulerLoop(latents: start, gridRows: 4, gridColumns: 5, patches: 1)
        for i in serial.timesteps.indices { try serial.stepAll(step: i, output: model.forward(any: serial.inputs(step: i))) }
        for warmup in [3, 1] {
            let box = UncheckedBox(model)
            let ranks = try LocalWorld.run(size: config.worldSize, timeout: 60) { comm in
                let loop = EulerLoop(latents: start, gridRows: 4, gridColumns: 5, patches: config.patchCount)
                try PipeFusion(model: box.value, context: ParallelContext(config: config, world: comm), warmupSteps: warmup).run(loop)
                return UncheckedBox(loop.latents)
            }
            for latents in ranks.map(\.value) {
                let err = relativeL2(latents, serial.latents)
                if warmup == 3 { #expect(err <= 1e-5, "\(config) warm-up 3: \(err)") }
                else { #expect(err > 1e-7 && err < 0.5, "\(config) warm-up 1: \(err)") }
            }
        }
    }
}

extension TinyInputs {
    /// The same inputs with the latent channels cut to `n` (a shape the model must refuse).
    func withChannels(_ n: Int) -> TinyInputs {
        TinyInputs(hiddenStates: slice(hiddenStates, axis: 1, 0..<n), timestep: timestep)
    }
}

/// The test family under mpirun: this test bundle is started on every rank, runs only
/// `TinyFamilyMPI.worker` for the configuration named by PARADIT_TINY_MPI, and each rank checks
/// its output against the family's serial forward.
@Suite("The test family under mpirun", .serialized)
struct TinyFamilyMPI {
    static let configs: [(ParallelConfig, String)] = [
        (.init(ulysses: 2), "ulysses=2"), (.init(ring: 2), "ring=2"), (.init(cfg: 2, ulysses: 2), "cfg=2,ulysses=2"),
        (.init(ulysses: 2, ring: 2), "ulysses=2,ring=2"), (.init(torus: 2), "torus=2"), (ParallelConfig(ring: 2).oneSidedCopy, "ring=2,one-sided"),
        (ParallelConfig(ulysses: 2, torus: 2).oneSidedCopy, "ulysses=2,torus=2,one-sided"), (.init(distrifusion: 2), "distrifusion=2"),
        (.init(pipefusion: 2), "pipefusion=2"), (.init(cfg: 2, pipefusion: 2, patches: 2), "cfg=2,pipefusion=2"),
    ]

    static var workerIndex: Int? { ProcessInfo.processInfo.environment["PARADIT_TINY_MPI"].flatMap { Int($0) } }

    @Test("equals the serial forward on every MPI rank", arguments: configs.indices)
    func mpi(_ index: Int) throws {
        guard Self.workerIndex == nil else { return }
        let (config, name) = Self.configs[index]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["mpirun", "--oversubscribe", "-np", "\(config.worldSize)", CommandLine.arguments[0],
                             "--testing-library", "swift-testing", "--filter", "TinyFamilyMPI/worker"]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "PARADIT_TINY_MPI": "\(index)",
                       "OMPI_MCA_btl_vader_single_copy_mechanism": "none"] { env[k] = v }
        process.environment = env
        let pipe = Pipe()
        (process.standardOutput, process.standardError) = (pipe, pipe)
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(name): \(output)")
        for rank in 0..<config.worldSize { #expect(output.contains("tiny-mpi rank \(rank) ok"), "\(name) rank \(rank): \(output)") }
    }

    @Test("worker", .enabled(if: workerIndex != nil && MPICommunicator.isLaunchedByMPI))
    func worker() throws {
        let (config, name) = Self.configs[Self.workerIndex!]
        let comm = try MPICommunicator.world()
        let model = try TinyDiTModel.make()
        let context = try ParallelContext(config: config, world: comm)
        let inputs = TinyDiTModel.inputs(batch: 2, grid: (4, 5))
        let out = try config.pipefusion > 1 ? PipeFusion(model: model, context: context).forward(inputs)
            : ParallelTransformer(model: model, context: context).forward(inputs)
        try context.releaseWindows()
        let err = relativeL2(out, try model.forward(inputs))
        #expect(err <= 1e-5, "\(name) rank \(comm.rank): relative L2 \(err)")
        if err <= 1e-5 { print("tiny-mpi rank \(comm.rank) ok (\(name), relative L2 \(err))") }
    }
}
