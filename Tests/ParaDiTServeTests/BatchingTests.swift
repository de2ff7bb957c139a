import Foundation
import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTParallel
import ParaDiTTensor
import ParaDiTWeights
import Testing
import ParaDiTServe

/// The latents `paradit generate` makes for `request` alone, serially.
func latentsAlone(_ pipeline: TextToImagePipeline, _ request: GenerationRequest,
                  _ conditioning: Conditioning? = nil) throws -> Tensor {
    try LocalWorld.run(size: 1) { comm in
        let context = try ParallelContext(config: ParallelConfig(), world: comm)
        return try pipeline.denoise(request, conditioning: conditioning, context: context, warmupSteps: 0)
    }[0]
}

/// The PNG files `paradit generate` writes for `request` alone, serially.
func pngsAlone(_ pipeline: TextToImagePipeline, _ request: GenerationRequest,
               _ conditioning: Conditioning? = nil) throws -> [Data] {
    let latents = try latentsAlone(pipeline, request, conditioning)
    return try VaeImageProcessor.postprocess(pipeline.decode(latents, request: request, conditioning: conditioning))
        .map { Data(PNGWriter.encode($0)) }
}

@Suite("Continuous batching")
struct BatchingTests {
    /// Also with INT8 weights and 8-bit inputs (quantized per token, exact integer sums) and with BF16
    /// compute (inputs rounded per row): a row's result never depends on the rows beside it.
    @Test("requests joining at different steps get the latents they get alone, bit for bit",
          arguments: [("demo", 4.5), ("demo", 1.0), ("pixart-sigma", 4.5), ("sd3", 5.0), ("flux", 3.5)],
          ["f32", "int8-dynamic", "bf16"])
    func joinsLate(run: (pipelineName: String, guidance: Double), precision: String) throws {
        let (pipelineName, guidance) = run
        // Bit for bit: not while a benchmark test runs OpenBLAS threaded (its sums differ).
        BLAS.multiThreadLock.lock()
        defer { BLAS.multiThreadLock.unlock() }
        let fixture = repositoryRoot
            .appendingPathComponent("Tests/ParaDiTDiffusionTests/Fixtures/prompt-pipelines/\(pipelineName)")
        let folder = pipelineName == "demo" ? demoFolder : fixture.appendingPathComponent("pipeline").path
        let pipeline = try TextToImagePipeline.load(directory: folder,
                                                    weightsDType: precision == "int8-dynamic" ? .int8Dynamic : .stored,
                                                    compute: precision == "bf16" ? .bf16 : .f32)
        // The fixtures' embeddings are of one prompt: the text requests differ in seed and steps.
        let conditioning = pipelineName == "demo" ? nil
            : try Conditioning(file: SafeTensorsFile(
                path: fixture.appendingPathComponent("conditioning.safetensors").path))
        let labels: [[Int]] = pipelineName == "demo" ? [[3], [5, 5], [0, 8, 9]] : [[], [], []]
        let requests = [(1, 12), (2, 7), (3, 9)].enumerated().map { i, r in
            GenerationRequest(seed: UInt64(r.0), steps: r.1, guidanceScale: guidance, classLabels: labels[i])
        }
        let joinAt = [0, 2, 5]
        let batch = DenoisingBatch()
        var finished: [Int: Tensor] = [:], step = 0
        while finished.count < requests.count {
            for (id, r) in requests.enumerated() where joinAt[id] == step {
                try batch.add(id: id, sampler: pipeline.sampler(r, conditioning: conditioning))
            }
            if !batch.isEmpty {
                for outcome in batch.step(try pipeline.transformer.forward(any: batch.inputs())) {
                    finished[outcome.id] = try outcome.latents.get()
                }
            }
            step += 1
        }
        for (id, r) in requests.enumerated() {
            #expect(finished[id]!.scalars == (try latentsAlone(pipeline, r, conditioning)).scalars, "request \(id)")
        }
    }

    @Test("a request of another size cannot join")
    func keyMismatch() throws {
        let pipeline = try TextToImagePipeline.load(directory: demoFolder)
        let batch = DenoisingBatch()
        try batch.add(id: 1, sampler: pipeline.sampler(
            GenerationRequest(steps: 4, guidanceScale: 4.5, classLabels: [1]), conditioning: nil))
        #expect(throws: (any Error).self) {
            try batch.add(id: 2, sampler: pipeline.sampler(
                GenerationRequest(steps: 4, guidanceScale: 4.5, height: 16, width: 16, classLabels: [1]),
                conditioning: nil))
        }
        #expect(throws: (any Error).self) {
            try batch.add(id: 3, sampler: pipeline.sampler(
                GenerationRequest(steps: 4, guidanceScale: 1, classLabels: [1]), conditioning: nil))
        }
    }
}

@Suite("Job queue")
struct JobQueueTests {
    func job(_ queue: JobQueue, key: Int = 0, images: Int = 1, timeout: Double = 60,
             answers: Answers) -> PendingJob {
        let id = queue.makeID()
        return PendingJob(job: ServeJob(id: id, request: GenerationRequest(steps: 1, guidanceScale: 1),
                                        hasConditioning: false),
                          conditioning: nil, key: [key], images: images, timeout: timeout) { answers.add(id, $0) }
    }

    @Test("joins in arrival order, within max-batch, never past an older job that cannot join")
    func plan() throws {
        let queue = JobQueue(maxQueue: 8, maxBatch: 4, timeout: 60), answers = Answers()
        let jobs = [job(queue, key: 0, images: 2, answers: answers), job(queue, key: 0, images: 1, answers: answers),
                    job(queue, key: 1, images: 1, answers: answers), job(queue, key: 0, images: 1, answers: answers),
                    job(queue, key: 0, images: 6, answers: answers)]
        for j in jobs { try queue.submit(j) }
        let first = queue.plan(key: nil, images: 0, idle: 0)
        #expect(first.joins.map(\.job.id) == [jobs[0].job.id, jobs[1].job.id])
        // Key 1 is next in line: the key-0 job behind it waits even though it would fit.
        let second = queue.plan(key: [0], images: 3, idle: 0)
        #expect(second.joins.isEmpty)
        queue.complete(jobs[0].job.id, .success([]))
        queue.complete(jobs[1].job.id, .success([]))
        #expect(queue.plan(key: nil, images: 0, idle: 0).joins.map(\.job.id) == [jobs[2].job.id])
        queue.complete(jobs[2].job.id, .success([]))
        #expect(queue.plan(key: nil, images: 0, idle: 0).joins.map(\.job.id) == [jobs[3].job.id])
        // More images than max-batch: alone, once the batch is empty.
        #expect(queue.plan(key: [0], images: 1, idle: 0).joins.isEmpty)
        queue.complete(jobs[3].job.id, .success([]))
        #expect(queue.plan(key: nil, images: 0, idle: 0).joins.map(\.job.id) == [jobs[4].job.id])
        #expect(answers.count == 4)
    }

    @Test("past max-queue: 429 with a retry time; closing refuses the waiting and ends the loop")
    func fullAndClosing() throws {
        let queue = JobQueue(maxQueue: 2, maxBatch: 1, timeout: 60), answers = Answers()
        let jobs = (0..<3).map { _ in job(queue, answers: answers) }
        try queue.submit(jobs[0])
        try queue.submit(jobs[1])
        #expect(throws: ServeError.queueFull(retryAfter: 1, waiting: 2, limit: 2)) { try queue.submit(jobs[2]) }
        #expect(queue.plan(key: nil, images: 0, idle: 0).joins.count == 1)
        queue.close()
        #expect(answers.result(jobs[1].job.id) == .failure(.shuttingDown))
        #expect(throws: ServeError.shuttingDown) { try queue.submit(jobs[2]) }
        #expect(!queue.plan(key: [0], images: 1, idle: 0).shutdown, "a running job keeps the loop going")
        queue.complete(jobs[0].job.id, .success([[1]]))
        #expect(queue.plan(key: nil, images: 0, idle: 0).shutdown)
    }

    @Test("a timed-out or cancelled job leaves at the next plan, waiting or running")
    func drops() throws {
        let queue = JobQueue(maxQueue: 4, maxBatch: 1, timeout: 0.05), answers = Answers()
        let running = job(queue, timeout: 0.05, answers: answers), waiting = job(queue, timeout: 60, answers: answers)
        try queue.submit(running)
        try queue.submit(waiting)
        #expect(queue.plan(key: nil, images: 0, idle: 0).joins.map(\.job.id) == [running.job.id])
        waiting.cancel()
        Thread.sleep(forTimeInterval: 0.1)
        let plan = queue.plan(key: [0], images: 1, idle: 0)
        #expect(plan.drops == [running.job.id] && plan.joins.isEmpty)
        #expect(answers.result(running.job.id) == .failure(.timedOut(seconds: 0.05)))
        #expect(answers.result(waiting.job.id) == .failure(.cancelled))
    }
}

/// Answers given to jobs, by id.
final class Answers: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Int: Result<[[UInt8]], ServeError>] = [:]
    func add(_ id: Int, _ r: Result<[[UInt8]], ServeError>) { lock.withLock { results[id] = r } }
    func result(_ id: Int) -> Result<[[UInt8]], ServeError>? { lock.withLock { results[id] } }
    var count: Int { lock.withLock { results.count } }
}
