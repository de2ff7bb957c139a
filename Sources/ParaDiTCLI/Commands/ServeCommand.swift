import ArgumentParser
import Foundation
import Logging
import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTParallel
import ParaDiTServe

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a pipeline over HTTP with OpenAI's images API, batching requests.",
        discussion: """
        POST /v1/images/generations takes OpenAI's fields (prompt, n, size as WIDTHxHEIGHT, \
        response_format b64_json or url, model: any name) and ParaDiT's (negative_prompt, \
        num_inference_steps, guidance_scale, seed, class_label for DiT folders). A request gets the \
        image `paradit generate` makes with the same arguments and seed. GET /v1/files/ID serves the \
        PNG of a url answer, GET /v1/models the loaded pipeline, GET /healthz the queue, GET /metrics \
        Prometheus text.

        Requests of the same size and guidance layout are denoised as one batch: one that arrives \
        while a batch runs joins it at the next step (each request keeps its own scheduler and \
        generator, so its image is the one it would get alone). Beyond --max-queue waiting requests \
        the answer is 429 with Retry-After; a request past --timeout, or whose client went away, \
        leaves at the next step. SIGTERM (or Ctrl-C) stops taking requests, refuses the queued \
        ones (503), finishes the running ones and exits 0; under mpirun send it to rank 0, whose pid \
        the line 'listening on …' gives (mpirun itself forwards a SIGTERM but then exits 1).

        Every rank runs every step, split as --parallel says (the exact methods: cfg, ulysses, \
        ring, torus and their products); rank 0 serves HTTP and hands each plan to the others, as \
        threads of this process or under mpirun.

        Examples:
          paradit serve      (the digits demo: -d '{"class_label": 3, "n": 4}' below)
          paradit serve --model pixart --port 8000 --parallel cfg=2,ulysses=2 --max-batch 8
          mpirun -np 2 paradit serve --model sd3 --parallel ulysses=2
          curl -s localhost:8000/v1/images/generations -H 'Content-Type: application/json' \\
            -d '{"prompt": "a lighthouse at dusk", "size": "512x512", "seed": 1}'
        """)

    @Option(help: "Diffusers pipeline folder (default: the digits demo, models/digits-dit).")
    var model: String?

    @Option(help: "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free one; the line 'listening on …' says which).")
    var port = 8000

    @Option(help: "Requests that may wait for a batch; past it the answer is 429.")
    var maxQueue = 64

    @Option(help: "Images denoised together at most (a request with more n runs alone).")
    var maxBatch = 8

    @Option(help: "Seconds a request may take from arrival to answer; past it, 504.")
    var timeout: Double = 600

    @Option(help: "The model id /v1/models lists (default: the folder's name).")
    var servedModelName: String?

    @Option(help: "Denoising steps when a request names none (default: 20; \(DemoModel.steps) for the demo).")
    var steps: Int?

    @Option(help: "Guidance scale when a request names none.")
    var guidance: Double = 4.5

    @OptionGroup var weights: WeightsOption
    @OptionGroup var compute: ComputeOption
    @OptionGroup var ranks: RankOptions

    func validate() throws {
        try compute.check(weights: weights)
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") }
        guard (1...100_000).contains(maxQueue) else {
            throw ValidationError("--max-queue must be 1...100000, got \(maxQueue)")
        }
        guard (1...1024).contains(maxBatch) else {
            throw ValidationError("--max-batch must be 1...1024, got \(maxBatch)")
        }
        guard timeout > 0, timeout <= 86_400 else {
            throw ValidationError("--timeout must be 0...86400 seconds, got \(timeout)")
        }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard guidance.isFinite, guidance >= 0 else {
            throw ValidationError("--guidance must be a finite number, 0 or more")
        }
        if ranks.parallel.auto {
            throw ValidationError("serve needs explicit degrees: --parallel auto plans one image's shape")
        }
        let config = try ranks.config()
        if config.pipefusion > 1 || config.distrifusion > 1 {
            throw ValidationError("serve runs the exact methods (cfg, ulysses, ring, torus): "
                                  + "PipeFusion and DistriFusion keep "
                                  + "one image's stale activations across steps, which a changing batch would mix up")
        }
    }

    mutating func run() throws {
        var log = Logger(label: "paradit.serve")
        log.logLevel = .info
        let folder = try model ?? DemoModel.directory()
        let isRoot = try !MPICommunicator.isLaunchedByMPI || MPICommunicator.world().rank == 0
        // Only rank 0 answers signals; the others wait for its last plan.
        if !isRoot { signal(SIGTERM, SIG_IGN); signal(SIGINT, SIG_IGN) }
        log.info("loading \(folder)")
        let pipeline = try TextToImagePipeline.load(directory: folder, weightsDType: weights.dtype,
                                                    compute: compute.dtype)
        _ = try pipeline.decoder()  // serve answers with images
        let metrics = ServeMetrics()
        let queue = JobQueue(maxQueue: maxQueue, maxBatch: maxBatch, timeout: timeout, metrics: metrics)
        let service = ImageService(pipeline: pipeline, config: try ranks.config(), queue: queue, metrics: metrics,
                                   weightsDType: weights.dtype,
                                   defaultSteps: steps ?? (model == nil ? DemoModel.steps : 20),
                                   defaultGuidance: guidance, timeout: timeout,
                                   modelName: servedModelName ?? URL(fileURLWithPath: folder).lastPathComponent)
        let server = isRoot ? startServer(service, log: log) : nil
        _ = try ranks.launch { context in
            try RankLoop(pipeline: pipeline, context: context, queue: context.world.rank == 0 ? queue : nil).run()
        }
        if let error = server?.wait() { throw error }
        log.info("stopped")
    }

    /// Starts the HTTP server on Swift's concurrency runtime; the rank loop runs on this thread.
    /// When the server ends (after a signal, or failing to bind) the queue closes, which ends the loop.
    func startServer(_ service: ImageService, log: Logger) -> ServerTask {
        let task = ServerTask()
        let (host, port) = (host, port)
        Task.detached {
            do {
                try await ImageServer.run(service, host: host, port: port, logger: log) { bound in
                    print("listening on http://\(host):\(bound) (pid \(getpid()); SIGTERM it to stop)")
                    fflush(stdout)
                }
            } catch {
                task.error = ValidationError("cannot serve on \(host):\(port): \(error)")
            }
            service.queue.close()
            task.done.signal()
        }
        return task
    }
}

/// The server task's end, for the thread that waits on it.
final class ServerTask: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    var error: Error?

    func wait() -> Error? {
        done.wait()
        return error
    }
}
