import Foundation
import ParaDiTDiffusion

/// A validated request on rank 0: the job, its conditioning, what it must share with a batch to
/// join it, and the callback that answers its client (called exactly once).
public final class PendingJob: @unchecked Sendable {
    public let job: ServeJob
    let conditioning: Conditioning?
    /// `DenoisingBatch.key` of its sampler.
    let key: [Int]
    let images: Int
    let arrival = PendingJob.now()
    let deadline: Double
    private var answer: ((Result<[[UInt8]], ServeError>) -> Void)?
    private let lock = NSLock()
    private var gone = false
    var joined: Double?

    public init(job: ServeJob, conditioning: Conditioning?, key: [Int], images: Int, timeout: Double,
         answer: @escaping (Result<[[UInt8]], ServeError>) -> Void) {
        (self.job, self.conditioning, self.key, self.images) = (job, conditioning, key, images)
        deadline = arrival + timeout
        self.answer = answer
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// The client closed its connection: the job leaves at the next step boundary.
    public func cancel() { lock.withLock { gone = true } }
    var isCancelled: Bool { lock.withLock { gone } }

    /// Answers the client; later calls do nothing.
    func resolve(_ result: Result<[[UInt8]], ServeError>) {
        let call = lock.withLock { () -> ((Result<[[UInt8]], ServeError>) -> Void)? in
            defer { answer = nil }
            return answer
        }
        call?(result)
    }
}

/// The bounded queue of requests between the HTTP handlers and rank 0's step loop. At each step
/// boundary the loop asks for a plan: which waiting jobs join the batch (same key, images within
/// `maxBatch`, in arrival order: a later job never overtakes an earlier one that cannot join), and
/// which running ones leave (timed out, or their client went away).
public final class JobQueue: @unchecked Sendable {
    public let maxQueue: Int, maxBatch: Int
    let timeout: Double
    let metrics: ServeMetrics?
    private let condition = NSCondition()
    private var waiting: [PendingJob] = []
    private var running: [Int: PendingJob] = [:]
    private var closed = false
    private var nextID = 1
    /// Seconds per finished request, smoothed: what Retry-After says.
    private var serviceSeconds = 1.0

    public init(maxQueue: Int, maxBatch: Int, timeout: Double, metrics: ServeMetrics? = nil) {
        (self.maxQueue, self.maxBatch, self.timeout, self.metrics) = (maxQueue, maxBatch, timeout, metrics)
    }

    /// A fresh request id.
    public func makeID() -> Int { condition.withLock { defer { nextID += 1 }; return nextID } }

    /// Refuses early (before the prompt is encoded) when the queue is full or closing.
    public func checkRoom() throws {
        try condition.withLock { try roomLocked() }
    }

    private func roomLocked() throws {
        if closed { throw ServeError.shuttingDown }
        if waiting.count >= maxQueue {
            throw ServeError.queueFull(retryAfter: max(1, Int(serviceSeconds.rounded(.up))),
                                       waiting: waiting.count, limit: maxQueue)
        }
    }

    /// Queues a validated job; its `answer` is called when it is done, dropped or refused.
    public func submit(_ job: PendingJob) throws {
        try condition.withLock {
            try roomLocked()
            waiting.append(job)
            metrics?.queueDepth.set(Double(waiting.count))
            condition.signal()
        }
    }

    public var depth: (waiting: Int, running: Int) { condition.withLock { (waiting.count, running.count) } }
    public var isClosed: Bool { condition.withLock { closed } }

    /// Stops taking requests: the waiting ones are refused now, the running ones finish.
    public func close() {
        let refused = condition.withLock { () -> [PendingJob] in
            closed = true
            defer { waiting = [] }
            metrics?.queueDepth.set(0.0)
            condition.broadcast()
            return waiting
        }
        for job in refused { finish(job, .failure(.shuttingDown)) }
    }

    /// Waits (polling, off any thread pool) until no job runs or waits.
    public func drained() async {
        while condition.withLock({ !running.isEmpty || !waiting.isEmpty }) {
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
    }

    /// The next step boundary's plan for a batch with `key` and `images` (nil: empty). With an empty
    /// batch it waits up to `idle` seconds for work, so idle ranks still hear from rank 0.
    public func plan(key: [Int]?, images: Int, idle: Double) -> (joins: [PendingJob], drops: [Int], shutdown: Bool) {
        condition.lock()
        let now = PendingJob.now()
        var expired = waiting.filter { $0.isCancelled || now > $0.deadline }
        waiting.removeAll { job in expired.contains { $0 === job } }
        if key == nil && waiting.isEmpty && running.isEmpty && !closed {
            _ = condition.wait(until: Date(timeIntervalSinceNow: idle))
        }
        let drops = running.values.filter { $0.isCancelled || now > $0.deadline }
        var joins: [PendingJob] = [], room = images, batchKey = key
        for job in waiting {
            let key = batchKey ?? job.key
            guard job.key == key, room + job.images <= maxBatch || (room == 0 && joins.isEmpty) else { break }
            joins.append(job)
            (room, batchKey) = (room + job.images, key)
        }
        waiting.removeFirst(joins.count)
        for job in joins { running[job.job.id] = job; job.joined = PendingJob.now() }
        for job in drops { running[job.job.id] = nil }
        expired += drops
        metrics?.queueDepth.set(Double(waiting.count))
        let shutdown = closed && waiting.isEmpty && running.isEmpty
        condition.unlock()
        for job in expired { finish(job, .failure(job.isCancelled ? .cancelled : .timedOut(seconds: timeout))) }
        for job in joins { metrics?.queueWait.record(Duration.seconds(job.joined! - job.arrival)) }
        return (joins, drops.map(\.job.id), shutdown)
    }

    /// The running job `id` (rank 0), to answer.
    func runningJob(_ id: Int) -> PendingJob? { condition.withLock { running[id] } }

    /// Answers job `id`, which leaves the running set.
    public func complete(_ id: Int, _ result: Result<[[UInt8]], ServeError>) {
        guard let job = condition.withLock({ running.removeValue(forKey: id) }) else { return }
        finish(job, result)
    }

    /// Answers `job` and counts it.
    func finish(_ job: PendingJob, _ result: Result<[[UInt8]], ServeError>) {
        let seconds = PendingJob.now() - job.arrival
        if case .success = result {
            condition.withLock { serviceSeconds = 0.8 * serviceSeconds + 0.2 * seconds }
        }
        metrics?.finished(result, seconds: seconds)
        job.resolve(result)
    }
}
