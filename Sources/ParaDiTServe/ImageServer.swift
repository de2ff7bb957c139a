import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The HTTP side of `paradit serve` (rank 0 only): OpenAI's images API and the operational routes
/// over an `ImageService`.
public enum ImageServer {
    /// The largest request body taken (a prompt and its options fit many times over).
    public static let maxBody = 1 << 20

    /// Serves until SIGTERM or SIGINT: then stops taking requests (503), refuses the queued ones,
    /// lets the running ones finish and returns. `onRunning` gets the bound port (for `--port 0`).
    public static func run(_ service: ImageService, host: String, port: Int, logger: Logger,
                           onRunning: @escaping @Sendable (Int) -> Void) async throws {
        let app = Application(router: router(service),
                              configuration: .init(address: .hostname(host, port: port), serverName: "paradit"),
                              onServerRunning: { onRunning($0.localAddress?.port ?? port) }, logger: logger)
        // Shut down in reverse order: the drain first (the server still answers while it runs).
        let group = ServiceGroup(configuration: .init(services: [app, Drain(queue: service.queue)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    struct Drain: Service {
        let queue: JobQueue
        func run() async throws {
            try? await gracefulShutdown()
            queue.close()
            await queue.drained()
        }
    }

    static func router(_ service: ImageService) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("healthz") { _, _ in
            let (waiting, running) = service.queue.depth
            let closing = service.queue.isClosed
            return json(["status": closing ? "shutting down" : "ok", "waiting": waiting, "running": running],
                        status: closing ? .serviceUnavailable : .ok)
        }
        router.get("v1/models") { _, _ in
            json(["object": "list",
                  "data": [["id": service.modelName, "object": "model", "created": 0, "owned_by": "paradit"]]])
        }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: service.metrics.text)))
        }
        router.get("v1/files/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let png = service.files.get(id) else {
                return failure(.badRequest(field: "id", "no file \(id) (files are kept for the newest "
                                           + "\(service.files.limit) images)"),
                               status: .notFound)
            }
            return Response(status: .ok, headers: [.contentType: "image/png"],
                            body: .init(byteBuffer: ByteBuffer(bytes: png)))
        }
        router.post("v1/images/generations") { request, _ in
            let cancel = CancelFlag(), host = request.head.authority ?? "localhost"
            return try await request.body.consumeWithInboundCloseHandler({ body in
                await generations(body, service: service, cancel: cancel, host: host)
            }, onInboundClosed: { cancel.cancel() })
        }
        return router
    }

    /// The request body, or nil when it is larger than `maxBody`. A larger body is still read to its
    /// end (up to 16 × maxBody) before the 400 goes out: a client still sending when the answer came
    /// would not read it, and both sides would wait until the client's timeout.
    static func wholeBody(_ body: RequestBody) async throws -> ByteBuffer? {
        var buffer = ByteBuffer(), total = 0
        for try await var chunk in body {
            total += chunk.readableBytes
            guard total <= 16 * maxBody else { return nil }
            if total <= maxBody { buffer.writeBuffer(&chunk) }
        }
        return total <= maxBody ? buffer : nil
    }

    static func generations(_ body: RequestBody, service: ImageService, cancel: CancelFlag,
                            host: String) async -> Response {
        let start = PendingJob.now()
        let request: ImageRequest
        do {
            guard let buffer = try await wholeBody(body) else {
                throw ServeError.badRequest(field: "body", "larger than \(maxBody) bytes")
            }
            request = try ImageRequest(json: Data(buffer.readableBytesView))
        } catch {
            let e = error as? ServeError ?? .badRequest(field: nil, "\(error)")
            service.metrics.finished(.failure(e), seconds: PendingJob.now() - start)
            return failure(e)
        }
        do {
            let (seed, pngs) = try await service.generate(request, cancel: cancel)
            let data: [[String: Any]] = pngs.map { png in
                request.responseFormat == .url
                    ? ["url": "http://\(host)/v1/files/\(service.files.add(png))"]
                    : ["b64_json": Data(png).base64EncodedString()]
            }
            return json(["created": Int(Date().timeIntervalSince1970), "data": data, "seed": seed])
        } catch {
            return failure(error as? ServeError ?? .failed("\(error)"))
        }
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// OpenAI's error body: {"error": {"message", "type", "param", "code"}}.
    static func failure(_ error: ServeError, status: HTTPResponse.Status? = nil) -> Response {
        let type: String
        switch error {
        case .badRequest: type = "invalid_request_error"
        case .queueFull: type = "rate_limit_error"
        case .timedOut: type = "timeout_error"
        default: type = "server_error"
        }
        var param: Any = NSNull()
        if case let .badRequest(field?, _) = error { param = field }
        var headers: HTTPFields = [:]
        if case let .queueFull(retry, _, _) = error { headers[.retryAfter] = String(retry) }
        return json(["error": ["message": error.description, "type": type, "param": param, "code": NSNull()]],
                    status: status ?? HTTPResponse.Status(code: error.status), headers: headers)
    }
}
