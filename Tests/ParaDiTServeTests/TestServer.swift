import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTParallel
import ParaDiTServe

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let demoFolder = repositoryRoot.appendingPathComponent("models/digits-dit").path
let pixArtFolder = repositoryRoot.appendingPathComponent(
    "Tests/ParaDiTDiffusionTests/Fixtures/prompt-pipelines/pixart-sigma/pipeline").path

/// `paradit serve` in this process: the HTTP server on a free loopback port and the rank loop on
/// `world` local ranks, until `stop()`.
final class TestServer: @unchecked Sendable {
    let service: ImageService
    let port: Int
    private let loopDone = DispatchSemaphore(value: 0)
    private let serverDone = DispatchSemaphore(value: 0)
    private var server: Task<Void, Never>?

    init(folder: String = demoFolder, config: ParallelConfig = ParallelConfig(), maxQueue: Int = 16, maxBatch: Int = 8,
         timeout: Double = 60, steps: Int = 10) throws {
        let pipeline = try TextToImagePipeline.load(directory: folder)
        let metrics = ServeMetrics()
        let queue = JobQueue(maxQueue: maxQueue, maxBatch: maxBatch, timeout: timeout, metrics: metrics)
        service = ImageService(pipeline: pipeline, config: config, queue: queue, metrics: metrics,
                               weightsDType: .stored, defaultSteps: steps, defaultGuidance: 4.5,
                               timeout: timeout, modelName: "test")
        let bound = PortBox()
        let service = service, serverDone = serverDone
        // On threads of its own: synchronous tests elsewhere in the bundle can hold every thread of
        // the cooperative pool for seconds, and the server must answer meanwhile.
        server = Task(executorPreference: ThreadExecutor.shared) {
            try? await ImageServer.run(service, host: "127.0.0.1", port: 0,
                                       logger: Logger(label: "test")) { bound.set($0) }
            queue.close()
            serverDone.signal()
        }
        port = try bound.wait()
        let loopDone = loopDone
        Thread.detachNewThread {
            _ = try? LocalWorld.run(size: config.worldSize, threadsPerRank: 1) { comm in
                let context = try ParallelContext(config: config, world: comm)
                try RankLoop(pipeline: pipeline, context: context, queue: comm.rank == 0 ? queue : nil).run()
            }
            loopDone.signal()
        }
    }

    /// As SIGTERM does: the queue closes and drains, then the server and the rank loop end.
    func stop() {
        service.queue.close()
        server?.cancel()
        serverDone.wait()
        loopDone.wait()
    }

    /// POSTs `body` to the images API; returns the status, the JSON answer and the headers.
    func generate(_ body: [String: Any]) throws -> (Int, [String: Any], [AnyHashable: Any]) {
        try post("/v1/images/generations", JSONSerialization.data(withJSONObject: body))
    }

    func post(_ path: String, _ data: Data) throws -> (Int, [String: Any], [AnyHashable: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        (request.httpMethod, request.httpBody, request.timeoutInterval) = ("POST", data, 120)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (status, body, headers) = try fetch(request)
        return (status, (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:], headers)
    }

    func get(_ path: String) throws -> (Int, Data) {
        let (status, body, _) = try fetch(URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!))
        return (status, body)
    }

    func fetch(_ request: URLRequest) throws -> (Int, Data, [AnyHashable: Any]) {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<(Int, Data, [AnyHashable: Any]), Error> = .failure(URLError(.unknown))
        URLSession.shared.dataTask(with: request) { data, response, error in
            let http = response as? HTTPURLResponse
            result = error.map { .failure($0) }
                ?? .success((http?.statusCode ?? 0, data ?? Data(), http?.allHeaderFields ?? [:]))
            done.signal()
        }.resume()
        done.wait()
        return try result.get()
    }
}

/// The port the server bound, handed from its task to the test's thread.
final class PortBox: @unchecked Sendable {
    private let ready = DispatchSemaphore(value: 0)
    private var port = 0
    func set(_ p: Int) { port = p; ready.signal() }
    func wait() throws -> Int {
        guard ready.wait(timeout: .now() + 120) == .success else { throw URLError(.cannotConnectToHost) }
        return port
    }
}

/// The error body's field and message.
func apiError(_ answer: [String: Any]) -> (param: String?, message: String) {
    let error = answer["error"] as? [String: Any] ?? [:]
    return (error["param"] as? String, error["message"] as? String ?? "")
}

/// The PNG files of a successful answer.
func images(_ answer: [String: Any]) -> [Data] {
    (answer["data"] as? [[String: Any]] ?? []).compactMap {
        ($0["b64_json"] as? String).flatMap { Data(base64Encoded: $0) }
    }
}

/// Runs tasks on dispatch's own worker threads instead of Swift's cooperative pool.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = ThreadExecutor()
    private let queue = DispatchQueue(label: "paradit.test.server", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// An HTTP client on a bare socket, to close the connection while its request runs.
final class RawClient {
    let socket: Int32

    init(port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard socket >= 0, connected == 0 else { throw URLError(.cannotConnectToHost) }
    }

    func send(_ body: String) throws {
        let request = "POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        let bytes = Array(request.utf8)
        guard write(socket, bytes, bytes.count) == bytes.count else { throw URLError(.cannotWriteToFile) }
    }

    func close() { _ = Glibc.close(socket) }
}
