import Foundation

/// Collects spans from every rank and writes them as Chrome trace JSON (one track per rank),
/// which ui.perfetto.dev and chrome://tracing open.
public final class Tracer: @unchecked Sendable {
    public struct Span: Sendable {
        public var name: String
        public var category: String
        public var rank: Int
        public var start: Double
        public var duration: Double
        public var bytes: Int?

        public init(name: String, category: String, rank: Int, start: Double, duration: Double, bytes: Int? = nil) {
            (self.name, self.category, self.rank, self.start, self.duration, self.bytes) = (name, category, rank, start, duration, bytes)
        }
    }

    /// The track of rank r's transfers in flight (posted, not yet completed), beside its own track.
    public static func transferTrack(_ rank: Int) -> Int { 1000 + rank }

    private let lock = NSLock()
    private var spans: [Span] = []
    private let origin = Date()

    public init() {}

    /// Times `body` as a span on `rank`'s track.
    public func span<R>(_ name: String, category: String, rank: Int, bytes: Int? = nil, _ body: () throws -> R) rethrows -> R {
        let start = Date().timeIntervalSince(origin)
        defer {
            let span = Span(name: name, category: category, rank: rank, start: start,
                            duration: Date().timeIntervalSince(origin) - start, bytes: bytes)
            lock.lock()
            spans.append(span)
            lock.unlock()
        }
        return try body()
    }

    /// Seconds since the trace began.
    public func now() -> Double { Date().timeIntervalSince(origin) }

    /// Records a span measured elsewhere (e.g. a transfer from its post to its completion).
    public func record(_ span: Span) {
        lock.lock()
        spans.append(span)
        lock.unlock()
    }

    public var recorded: [Span] {
        lock.lock()
        defer { lock.unlock() }
        return spans
    }

    /// The trace as Chrome's JSON object format ("X" complete events, microseconds).
    public func json() throws -> Data {
        let events: [[String: Any]] = recorded.map { s in
            var e: [String: Any] = ["name": s.name, "cat": s.category, "ph": "X", "pid": 0, "tid": s.rank,
                                    "ts": s.start * 1e6, "dur": s.duration * 1e6]
            if let bytes = s.bytes { e["args"] = ["bytes": bytes] }
            return e
        }
        let names: [[String: Any]] = Set(recorded.map(\.rank)).sorted().map {
            ["name": "thread_name", "ph": "M", "pid": 0, "tid": $0,
             "args": ["name": $0 >= 1000 ? "rank \($0 - 1000) transfers in flight" : "rank \($0)"]]
        }
        return try JSONSerialization.data(withJSONObject: ["traceEvents": names + events, "displayTimeUnit": "ms"],
                                          options: [.sortedKeys])
    }

    public func write(to path: String) throws { try json().write(to: URL(fileURLWithPath: path), options: .atomic) }

    /// The file of one MPI process's trace: `t.json` → `t.rank1.json`, `t` → `t.rank1.json` (each
    /// process must write its own, or the last to finish overwrites the others).
    public static func path(_ path: String, rank: Int) -> String {
        let base = path.hasSuffix(".json") ? String(path.dropLast(5)) : path
        return base + ".rank\(rank).json"
    }
}
