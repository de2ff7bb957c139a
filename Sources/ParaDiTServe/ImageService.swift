import Foundation
import ParaDiTDiffusion
import ParaDiTModels
import ParaDiTParallel
import ParaDiTWeights

/// Set when a client goes away, possibly before its job exists.
public final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    private var job: PendingJob?

    public init() {}

    public func cancel() {
        let job = lock.withLock { () -> PendingJob? in
            cancelled = true
            return self.job
        }
        job?.cancel()
    }

    func attach(_ job: PendingJob) {
        if lock.withLock({ () -> Bool in self.job = job; return cancelled }) { job.cancel() }
    }
}

/// Rank 0's side of serving, below HTTP: checks a request against the loaded pipeline, encodes its
/// prompt (on a thread of its own, never on Swift's cooperative pool), queues it and awaits its PNGs.
public final class ImageService: @unchecked Sendable {
    public let pipeline: TextToImagePipeline
    let config: ParallelConfig
    public let queue: JobQueue
    public let metrics: ServeMetrics
    let weightsDType: WeightsDType
    /// What a request gets when it names no steps or guidance (as `paradit generate`).
    let defaultSteps: Int, defaultGuidance: Double
    let timeout: Double
    /// The name `GET /v1/models` lists.
    public let modelName: String
    let files: FileStore
    private let encoder = DispatchQueue(label: "paradit.serve.encode")

    public init(pipeline: TextToImagePipeline, config: ParallelConfig, queue: JobQueue, metrics: ServeMetrics,
                weightsDType: WeightsDType, defaultSteps: Int, defaultGuidance: Double, timeout: Double,
                modelName: String, maxFiles: Int = 256) {
        (self.pipeline, self.config, self.queue, self.metrics) = (pipeline, config, queue, metrics)
        (self.weightsDType, self.defaultSteps, self.defaultGuidance) = (weightsDType, defaultSteps, defaultGuidance)
        (self.timeout, self.modelName, files) = (timeout, modelName, FileStore(limit: maxFiles))
    }

    /// A checked job ready to queue: what every rank runs, and what rank 0 keeps.
    struct Prepared {
        let job: ServeJob
        let conditioning: Conditioning?
        let key: [Int]
        let images: Int
    }

    /// The PNG files of `request`, or the `ServeError` that says why not.
    public func generate(_ request: ImageRequest,
                         cancel: CancelFlag) async throws -> (seed: UInt64, images: [[UInt8]]) {
        let arrival = PendingJob.now()
        do {
            try queue.checkRoom()
            let prepared = try await withCheckedThrowingContinuation { continuation in
                encoder.async { continuation.resume(with: Result { try self.prepare(request) }) }
            }
            let images = try await withCheckedThrowingContinuation { continuation in
                let job = PendingJob(job: prepared.job, conditioning: prepared.conditioning, key: prepared.key,
                                     images: prepared.images, timeout: timeout - (PendingJob.now() - arrival)) {
                    continuation.resume(with: $0)
                }
                do {
                    try queue.submit(job)
                    cancel.attach(job)
                } catch {
                    job.resolve(.failure(error as? ServeError ?? .failed("\(error)")))
                }
            }
            return (prepared.job.seed, images)
        } catch let error as ServeError {
            if [400, 429, 503].contains(error.status) {
                metrics.finished(.failure(error), seconds: PendingJob.now() - arrival)
            }
            throw error
        }
    }

    /// Checks `r` against the pipeline and encodes its prompt.
    func prepare(_ r: ImageRequest) throws -> Prepared {
        let className = pipeline.folder.className
        var labels: [Int] = [], conditioning: Conditioning?
        let guidance = r.guidanceScale ?? defaultGuidance
        if pipeline.family.isClassConditional {
            let text = r.prompt?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            let fromPrompt = Int(text)
            if !text.isEmpty && fromPrompt == nil && r.classLabel == nil {
                throw ServeError.badRequest(field: "prompt",
                                            "\(className) is class-conditional: give class_label (a class id), "
                                            + "or the class id as the prompt")
            }
            guard let label = r.classLabel ?? fromPrompt else {
                throw ServeError.badRequest(field: "class_label", "required: \(className) is class-conditional")
            }
            if let p = fromPrompt, p != label {
                throw ServeError.badRequest(field: "prompt", "says class \(p) but class_label is \(label)")
            }
            if r.negativePrompt != nil {
                throw ServeError.badRequest(field: "negative_prompt",
                                            "\(className) is class-conditional and takes none")
            }
            labels = Array(repeating: label, count: r.n)
        } else {
            if r.classLabel != nil {
                throw ServeError.badRequest(field: "class_label",
                                            "is for class-conditional pipelines; \(className) takes a prompt")
            }
            guard let prompt = r.prompt, !prompt.allSatisfy(\.isWhitespace) else {
                throw ServeError.badRequest(field: "prompt", "is empty; \(className) needs a text prompt")
            }
            let text = TextPrompt(prompts: Array(repeating: prompt, count: r.n), negativePrompt: r.negativePrompt)
            conditioning = try apiErrors {
                try TextToImagePipeline.encodePrompt(folder: pipeline.folder, text, guidance: guidance,
                                                     weightsDType: weightsDType).conditioning
            }
        }
        let request = GenerationRequest(seed: r.seed ?? UInt64.random(in: 0...UInt64(UInt32.max)),
                                        steps: r.steps ?? defaultSteps, guidanceScale: guidance,
                                        height: r.height, width: r.width, classLabels: labels)
        let sampler = try apiErrors { () -> PatchSampler in
            try pipeline.validate(request, conditioning: conditioning)
            let sampler = try pipeline.sampler(request, conditioning: conditioning)
            try config.validate(pipeline.transformer.problem(any: sampler.inputs(step: 0)))
            return sampler
        }
        return Prepared(job: ServeJob(id: queue.makeID(), request: request, hasConditioning: conditioning != nil),
                        conditioning: conditioning, key: DenoisingBatch.key(of: sampler), images: sampler.images)
    }

    /// The engine's errors as the API's: its input names and options become request fields.
    func apiErrors<R>(_ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let WeightsError.badInput(name, reason) {
            let field = Self.fieldOfInput[name] ?? name
            throw ServeError.badRequest(field: field, Self.apiWords(reason))
        } catch let error as ServeError {
            throw error
        } catch {
            throw ServeError.badRequest(field: nil, Self.apiWords("\(error)"))
        }
    }

    static let fieldOfInput = ["class": "class_label", "steps": "num_inference_steps",
                               "negative-prompt": "negative_prompt",
                               "guidance": "guidance_scale", "prompt_embeds": "prompt"]
    static let wordOfOption = [("--size", "size"), ("--class", "class_label"), ("--steps", "num_inference_steps"),
                               ("--guidance", "guidance_scale"), ("--negative-prompt", "negative_prompt"),
                               ("--prompt", "prompt")]

    static func apiWords(_ text: String) -> String {
        wordOfOption.reduce(text) { $0.replacingOccurrences(of: $1.0, with: $1.1) }
    }
}

/// The PNGs of `response_format: url` answers, kept in memory: the newest `limit` files.
final class FileStore: @unchecked Sendable {
    private let lock = NSLock()
    private var files: [String: [UInt8]] = [:]
    private var order: [String] = []
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func add(_ png: [UInt8]) -> String {
        let id = "img-" + UUID().uuidString.lowercased()
        lock.withLock {
            files[id] = png
            order.append(id)
            while order.count > limit { files[order.removeFirst()] = nil }
        }
        return id
    }

    func get(_ id: String) -> [UInt8]? { lock.withLock { files[id] } }
}
