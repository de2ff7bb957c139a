import Foundation
import Prometheus

/// The server's Prometheus metrics (`GET /metrics`, text format 0.0.4).
public final class ServeMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    let queueDepth: Gauge
    let runningImages: Gauge
    let stepsPerSecond: Gauge
    let latency: DurationHistogram
    let queueWait: DurationHistogram
    let batchImages: ValueHistogram
    private var outcomes: [String: Counter] = [:]
    private let lock = NSLock()

    static let outcomeLabels = ["ok", "bad_request", "rejected", "timeout", "cancelled", "shutdown", "error"]

    public init() {
        queueDepth = registry.makeGauge(name: "paradit_queue_depth", help: "Requests waiting to join a batch.")
        runningImages = registry.makeGauge(name: "paradit_running_images", help: "Images in the denoising batch.")
        stepsPerSecond = registry.makeGauge(name: "paradit_steps_per_second",
                                            help: "Denoising steps per second of the batch, over its last step.")
        let seconds: [Duration] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
            .map { Duration.seconds($0) }
        latency = registry.makeDurationHistogram(name: "paradit_request_duration_seconds", buckets: seconds,
                                                 help: "Arrival to answer, every outcome.")
        queueWait = registry.makeDurationHistogram(name: "paradit_queue_wait_seconds", buckets: seconds,
                                                   help: "Arrival to joining a denoising batch.")
        batchImages = registry.makeValueHistogram(name: "paradit_batch_images", buckets: [1, 2, 4, 8, 16, 32, 64],
                                                  help: "Images denoised together, per step.")
        for label in Self.outcomeLabels {
            outcomes[label] = registry.makeCounter(name: "paradit_requests_total", labels: [("outcome", label)],
                                                   help: "Requests answered, by outcome.")
        }
    }

    /// Counts an answered request (whether or not it reached the queue).
    func finished(_ result: Result<[[UInt8]], ServeError>, seconds: Double) {
        let label: String
        switch result {
        case .success: label = "ok"
        case let .failure(error): label = error.outcome
        }
        lock.withLock { outcomes[label] }?.increment()
        latency.record(Duration.seconds(seconds))
    }

    /// One denoising step of `images` images that took `seconds`.
    func step(images: Int, seconds: Double) {
        batchImages.record(Double(images))
        if seconds > 0 { stepsPerSecond.set(1 / seconds) }
    }

    public var text: String { registry.emitToString() }
}
