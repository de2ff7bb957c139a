import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParaDiTDiffusion
import ParaDiTParallel
import Testing
import ParaDiTServe

/// Polls `condition` every 10 ms for up to `seconds`.
func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return try condition()
}

/// Runs `body` on another thread; `wait()` returns its result.
final class Background<R>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<R, Error>?
    init(_ body: @escaping () throws -> R) {
        Thread.detachNewThread { [self] in
            result = Result { try body() }
            done.signal()
        }
    }
    func wait() throws -> R {
        done.wait()
        return try result!.get()
    }
}

@Suite("paradit serve over HTTP, in process", .serialized)
struct ServerTests {
    @Test("concurrent requests, joining a running batch, get the images they get alone",
          arguments: [ParallelConfig(), ParallelConfig(cfg: 2, ulysses: 2)])
    func sameAsAlone(config: ParallelConfig) throws {
        let server = try TestServer(config: config)
        defer { server.stop() }
        let first = Background { try server.generate(["prompt": "3", "seed": 11, "num_inference_steps": 300]) }
        #expect(try eventually(60) { server.service.queue.depth.running == 1 })
        let bodies: [[String: Any]] = [["class_label": 7, "seed": 12, "n": 2, "num_inference_steps": 5],
                                       ["prompt": "0", "seed": 13, "num_inference_steps": 8, "guidance_scale": 2.5],
                                       ["class_label": 4, "seed": 14, "size": "16x16", "num_inference_steps": 3]]
        let later = bodies.map { body in Background { try server.generate(body) } }
        let answers = try [first.wait()] + later.map { try $0.wait() }
        let requests = [GenerationRequest(seed: 11, steps: 300, guidanceScale: 4.5, classLabels: [3]),
                        GenerationRequest(seed: 12, steps: 5, guidanceScale: 4.5, classLabels: [7, 7]),
                        GenerationRequest(seed: 13, steps: 8, guidanceScale: 2.5, classLabels: [0]),
                        GenerationRequest(seed: 14, steps: 3, guidanceScale: 4.5, height: 16, width: 16,
                                          classLabels: [4])]
        for (answer, request) in zip(answers, requests) {
            #expect(answer.0 == 200, "\(answer.1)")
            #expect(images(answer.1) == (try pngsAlone(server.service.pipeline, request)), "seed \(request.seed)")
            #expect(answer.1["seed"] as? UInt64 == request.seed || answer.1["seed"] as? Int == Int(request.seed))
        }
        // The two that arrived while the first ran joined it: some steps held 2 requests or more.
        let (_, metrics) = try server.get("/metrics")
        let text = String(decoding: metrics, as: UTF8.self)
        let single = text.split(separator: "\n").first { $0.hasPrefix("paradit_batch_images_bucket{le=\"1.0\"}") }
        let count = text.split(separator: "\n").first { $0.hasPrefix("paradit_batch_images_count") }
        #expect(single != nil && count != nil
                && single!.split(separator: " ").last != count!.split(separator: " ").last, "\(text)")
    }

    static let badRequests: [(body: String, field: String?)] = [
        (#"{"prompt": "3", "n": "two"}"#, "n"),
        (#"{"prompt": "3", "n": 11}"#, "n"),
        (#"{"prompt": "3", "size": "20x20"}"#, "size"),
        (#"{"prompt": "3", "size": "32x16"}"#, "size"),
        (#"{"class_label": 1000}"#, "class_label"),
        (#"{"prompt": "a cat"}"#, "prompt"),
        (#"{"prompt": "", "n": 1}"#, "class_label"),
        (#"{"prompt": "3", "negative_prompt": "blurry"}"#, "negative_prompt"),
        (#"{"prompt": "3", "num_inference_steps": 20000}"#, "num_inference_steps"),
        (#"{"prompt": "3", "colour": "red"}"#, "colour"),
        ("not json", nil),
    ]

    @Test("bad requests get 400 naming the field; the server goes on")
    func badRequests() throws {
        let server = try TestServer()
        defer { server.stop() }
        for (body, field) in Self.badRequests {
            let (status, answer, _) = try server.post("/v1/images/generations", Data(body.utf8))
            #expect(status == 400 && apiError(answer).param == field, "\(body): \(status) \(answer)")
        }
        let huge = Data(("{\"prompt\": \"" + String(repeating: "a", count: ImageServer.maxBody) + "\"}").utf8)
        let (status, answer, _) = try server.post("/v1/images/generations", huge)
        #expect(status == 400 && apiError(answer).param == "body", "\(answer)")
        #expect(try server.generate(["prompt": "3", "num_inference_steps": 2]).0 == 200)
        let metrics = String(decoding: try server.get("/metrics").1, as: UTF8.self)
        #expect(metrics.contains("paradit_requests_total{outcome=\"bad_request\"} \(Self.badRequests.count + 1)"),
                "\(metrics)")
    }

    @Test("a text pipeline refuses an empty prompt and a class label")
    func textPipeline() throws {
        let server = try TestServer(folder: pixArtFolder, steps: 2)
        defer { server.stop() }
        for (body, field) in [(#"{"prompt": "  "}"#, "prompt"),
                              (#"{"prompt": "a fox", "class_label": 3}"#, "class_label"),
                              (#"{"prompt": "a fox", "size": "17x17"}"#, "size")] {
            let (status, answer, _) = try server.post("/v1/images/generations", Data(body.utf8))
            #expect(status == 400 && apiError(answer).param == field, "\(body): \(answer)")
        }
        let (status, answer, _) = try server.generate(["prompt": "a red fox", "seed": 3, "negative_prompt": "blurry"])
        #expect(status == 200 && images(answer).count == 1, "\(answer)")
    }

    @Test("past --max-queue: 429 with Retry-After; /healthz answers meanwhile")
    func queueFull() throws {
        let server = try TestServer(maxQueue: 1, maxBatch: 1)
        defer { server.stop() }
        let running = Background { try server.generate(["prompt": "1", "num_inference_steps": 999]) }
        #expect(try eventually(60) { server.service.queue.depth.running == 1 })
        let waiting = Background { try server.generate(["prompt": "2", "num_inference_steps": 2]) }
        #expect(try eventually(60) { server.service.queue.depth.waiting == 1 })
        let (status, answer, headers) = try server.generate(["prompt": "3"])
        #expect(status == 429 && apiError(answer).message.contains("1 of 1 requests waiting"), "\(answer)")
        #expect(headers.contains { ($0.key as? String)?.lowercased() == "retry-after" })
        #expect(try server.get("/healthz").0 == 200)
        #expect(try running.wait().0 == 200 && waiting.wait().0 == 200)
    }

    @Test("a request past --timeout is dropped at a step boundary with 504")
    func timedOut() throws {
        let server = try TestServer(timeout: 1)
        defer { server.stop() }
        let start = Date()
        let (status, answer, _) = try server.generate(["prompt": "1", "num_inference_steps": 999])
        #expect(status == 504 && Date().timeIntervalSince(start) < 30, "\(answer)")
        #expect(try eventually(5) { server.service.queue.depth == (0, 0) })
        let metrics = String(decoding: try server.get("/metrics").1, as: UTF8.self)
        #expect(metrics.contains("paradit_requests_total{outcome=\"timeout\"} 1"), "\(metrics)")
        // The rank loop sets the gauge when it applies the drop, just after the queue has made it.
        #expect(try eventually(5) {
            String(decoding: try server.get("/metrics").1, as: UTF8.self).contains("paradit_running_images 0.0")
        })
        #expect(try server.generate(["prompt": "2", "num_inference_steps": 2]).0 == 200)
    }

    @Test("a request whose client closed its connection leaves the batch")
    func clientGone() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = try RawClient(port: server.port)
        try client.send(#"{"prompt": "2", "num_inference_steps": 999}"#)
        #expect(try eventually(60) { server.service.queue.depth.running == 1 })
        client.close()
        #expect(try eventually(30) { server.service.queue.depth == (0, 0) })
        let metrics = String(decoding: try server.get("/metrics").1, as: UTF8.self)
        #expect(metrics.contains("paradit_requests_total{outcome=\"cancelled\"} 1"), "\(metrics)")
        #expect(try server.generate(["prompt": "2", "num_inference_steps": 2]).0 == 200)
    }

    @Test("response_format url: /v1/files serves the PNG; /v1/models lists the pipeline")
    func filesAndModels() throws {
        let server = try TestServer()
        defer { server.stop() }
        let (_, b64, _) = try server.generate(["prompt": "5", "seed": 9])
        let (status, answer, _) = try server.generate(["prompt": "5", "seed": 9, "response_format": "url"])
        let url = (answer["data"] as? [[String: Any]])?.first?["url"] as? String ?? ""
        #expect(status == 200 && url.hasPrefix("http://127.0.0.1:\(server.port)/v1/files/img-"), "\(answer)")
        let path = URL(string: url)?.path ?? ""
        #expect(try server.get(path) == (200, images(b64)[0]))
        #expect(try server.get("/v1/files/img-nothing").0 == 404)
        let models = try JSONSerialization.jsonObject(with: server.get("/v1/models").1) as? [String: Any]
        #expect((models?["data"] as? [[String: Any]])?.first?["id"] as? String == "test")
    }
}
