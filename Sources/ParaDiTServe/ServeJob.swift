import Foundation
import ParaDiTDiffusion

/// A request as every rank needs it: what to generate. Its conditioning (prompt embeddings) travels
/// separately, as tensors.
public struct ServeJob: Codable, Sendable, Equatable {
    public var id: Int
    public var request: GenerationRequest
    /// Whether rank 0 sends prompt embeddings with the job.
    public var hasConditioning: Bool

    public init(id: Int, request: GenerationRequest, hasConditioning: Bool) {
        (self.id, self.request, self.hasConditioning) = (id, request, hasConditioning)
    }

    public var seed: UInt64 { request.seed }
}

/// Why a request did not get its images, as the HTTP status and OpenAI error body say it.
public enum ServeError: Error, Equatable, CustomStringConvertible {
    /// A field (nil: the body as a whole) the server cannot take, with why.
    case badRequest(field: String?, String)
    case queueFull(retryAfter: Int, waiting: Int, limit: Int)
    case shuttingDown
    case timedOut(seconds: Double)
    case cancelled
    case failed(String)

    public var status: Int {
        switch self {
        case .badRequest: return 400
        case .queueFull: return 429
        case .shuttingDown: return 503
        case .timedOut: return 504
        case .cancelled: return 499
        case .failed: return 500
        }
    }

    /// The outcome label of the requests counter.
    public var outcome: String {
        switch self {
        case .badRequest: return "bad_request"
        case .queueFull: return "rejected"
        case .shuttingDown: return "shutdown"
        case .timedOut: return "timeout"
        case .cancelled: return "cancelled"
        case .failed: return "error"
        }
    }

    public var description: String {
        switch self {
        case let .badRequest(field, message): return field.map { "\($0): \(message)" } ?? message
        case let .queueFull(retry, waiting, limit):
            return "the queue is full (\(waiting) of \(limit) requests waiting); retry after \(retry) s"
        case .shuttingDown: return "the server is shutting down; the request was not run"
        case let .timedOut(s):
            return "the request took longer than the server's timeout of \(fmtSeconds(s)) s and was dropped"
        case .cancelled: return "the client went away; the request was dropped"
        case let .failed(message): return "generation failed: \(message)"
        }
    }
}

func fmtSeconds(_ s: Double) -> String { s == s.rounded() ? String(Int(s)) : String(format: "%.1f", s) }
