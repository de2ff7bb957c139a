import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// `paradit serve --port 0 …` (or under `mpirun -np ranks`) until `stop()`: SIGTERM, then its exit status.
final class ServeProcess {
    let process = Process()
    let url: String
    /// The serving process (rank 0 under mpirun).
    let pid: Int32
    private let output = Pipe()

    init(_ args: [String], ranks: Int = 1) throws {
        var env = ProcessInfo.processInfo.environment
        if ranks > 1 {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["mpirun", "--oversubscribe", "-np", "\(ranks)",
                                 paraditBinary, "serve", "--port", "0"] + args
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
            env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        } else {
            process.executableURL = URL(fileURLWithPath: paraditBinary)
            process.arguments = ["serve", "--port", "0"] + args
        }
        process.environment = env
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        let handle = output.fileHandleForReading
        let deadline = Date().addingTimeInterval(60)
        while !String(decoding: line, as: UTF8.self).contains("\n") && Date() < deadline {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let range = text.range(of: "http://") else {
            process.terminate()
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "serve did not start: \(text)"])
        }
        url = String(text[range.lowerBound...].prefix { !$0.isWhitespace })
        pid = Int32(text.components(separatedBy: "(pid ").last?.prefix { $0.isNumber } ?? "")
            ?? process.processIdentifier
    }

    /// /healthz's counts of waiting and running requests.
    func health() -> (waiting: Int, running: Int)? {
        guard let data = try? Data(contentsOf: URL(string: url + "/healthz")!),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let waiting = object["waiting"] as? Int, let running = object["running"] as? Int else { return nil }
        return (waiting, running)
    }

    /// Polls /healthz until `condition` holds (false after `seconds`).
    func await(_ seconds: Double = 30, _ condition: ((waiting: Int, running: Int)) -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if let h = health(), condition(h) { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// SIGTERM to the serving process, then the exit status (nil: still running after `timeout`
    /// seconds, then killed).
    func stop(timeout: Double = 60) -> Int32? {
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            return nil
        }
        return process.terminationStatus
    }
}

/// Runs a command; returns its exit status and output.
func run(_ executable: String, _ args: [String]) throws -> (Int32, String) {
    let process = Process(), pipe = Pipe()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = args
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

func python(_ script: String, _ args: [String]) throws -> (Int32, String) {
    try run("/usr/bin/env", ["python3", repository.appendingPathComponent("tools/\(script)").path] + args)
}

func temporaryFolder() -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-serve-\(UUID())").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("paradit serve, the executable", .serialized)
struct ServeCommandTests {
    /// What OpenAI's client gets for `clientArgs` equals `paradit generate generateArgs`'s PNGs, byte for byte.
    func expectSameAsGenerate(server: ServeProcess, clientArgs: [String], generateArgs: [String], images: Int) throws {
        let out = temporaryFolder()
        let (status, output) = try python("openai_client.py",
                                          ["--base-url", server.url + "/v1", "--out", out] + clientArgs)
        #expect(status == 0, "\(output)")
        let (generated, log) = try run(paraditBinary, ["generate", "--output", out + "/generated.png"] + generateArgs)
        #expect(generated == 0, "\(log)")
        for i in 0..<images {
            let file = images == 1 ? "generated.png" : "generated_\(i + 1).png"
            let served = FileManager.default.contents(atPath: "\(out)/\(i).png")
            #expect(served != nil && served == FileManager.default.contents(atPath: "\(out)/\(file)"),
                    "image \(i) of \(clientArgs)")
        }
    }

    @Test("OpenAI's client gets the image `paradit generate` makes, bit for bit; SIGTERM ends with 0")
    func openAIClient() throws {
        let server = try ServeProcess([])
        try expectSameAsGenerate(server: server,
                                 clientArgs: ["--prompt", "3", "--n", "2", "--seed", "7", "--steps", "12"],
                                 generateArgs: ["--class", "3", "--class", "3", "--seed", "7", "--steps", "12"],
                                 images: 2)
        try expectSameAsGenerate(server: server,
                                 clientArgs: ["--prompt", "8", "--seed", "2", "--response-format", "url"],
                                 generateArgs: ["--class", "8", "--seed", "2"], images: 1)
        #expect(server.stop() == 0)
        let pixart = repository.appendingPathComponent(
            "Tests/ParaDiTDiffusionTests/Fixtures/prompt-pipelines/pixart-sigma/pipeline").path
        let text = try ServeProcess(["--model", pixart])
        try expectSameAsGenerate(server: text,
                                 clientArgs: ["--prompt", "A red fox", "--seed", "3", "--steps", "4",
                                              "--negative-prompt", "blurry", "--guidance", "3.5"],
                                 generateArgs: ["--model", pixart, "--prompt", "A red fox", "--seed", "3",
                                                "--steps", "4", "--negative-prompt", "blurry", "--guidance", "3.5"],
                                 images: 1)
        #expect(text.stop() == 0)
    }

    @Test("SIGTERM: the running request finishes, the queued one gets 503, the exit status is 0")
    func gracefulShutdown() throws {
        let server = try ServeProcess(["--max-batch", "1"])
        let request = { (body: String) in
            Background {
                try run("/usr/bin/env", ["python3", "-c", """
                    import sys, urllib.request, urllib.error
                    try: print(urllib.request.urlopen(sys.argv[1], data=sys.argv[2].encode()).status, end="")
                    except urllib.error.HTTPError as e: print(e.code, end="")
                    """, server.url + "/v1/images/generations", body]).1
            }
        }
        let running = request(#"{"prompt": "1", "num_inference_steps": 900}"#)
        #expect(server.await { $0.running == 1 })
        let queued = request(#"{"prompt": "2", "size": "16x16"}"#)
        #expect(server.await { $0.waiting == 1 })
        #expect(server.stop() == 0)
        #expect(try running.wait() == "200")
        #expect(try queued.wait() == "503")
    }

    @Test("load: 32 requests from 8 clients, none lost, no 5xx, 429 only on a full queue, /healthz throughout")
    func load() throws {
        let json = temporaryFolder() + "/load.json"
        let (status, output) = try python("loadtest.py",
                                          ["--binary", paraditBinary, "--serve", "--max-batch 2 --max-queue 2",
                                           "--serve", "--max-batch 8 --max-queue 64", "--requests", "32",
                                           "--clients", "8", "--retry-scale", "0.1", "--time-limit", "120",
                                           "--json", json])
        #expect(status == 0, "\(output)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json)))
            as? [String: Any]
        let rows = report?["results"] as? [[String: Any]] ?? []
        #expect(rows.count == 2 && rows.allSatisfy { $0["answered"] as? Int == 32 }, "\(output)")
        #expect((rows.first?["rejected_429"] as? Int ?? 0) > 0, "a queue of 2 under 8 clients rejects some: \(output)")
        #expect(rows.last?["rejected_429"] as? Int == 0, "a queue of 64 never fills: \(output)")
    }

    @Test("under mpirun -np 2 --parallel ulysses=2: the same images; SIGTERM to rank 0 ends both ranks with 0")
    func mpi() throws {
        let server = try ServeProcess(["--parallel", "ulysses=2"], ranks: 2)
        try expectSameAsGenerate(server: server,
                                 clientArgs: ["--prompt", "5", "--n", "2", "--seed", "4", "--steps", "10"],
                                 generateArgs: ["--class", "5", "--class", "5", "--seed", "4", "--steps", "10"],
                                 images: 2)
        let (status, output) = try python("loadtest.py", ["--url", server.url, "--requests", "32", "--clients", "8",
                                                           "--time-limit", "120"])
        #expect(status == 0, "\(output)")
        #expect(server.stop() == 0)
    }

    @Test("serve refuses what it cannot run, before loading")
    func refusals() throws {
        for (args, message) in [(["--parallel", "pipefusion=2"], "exact methods"),
                                (["--parallel", "auto", "--world", "2"], "explicit"),
                                (["--port", "70000"], "--port"), (["--max-batch", "0"], "--max-batch")] {
            let (status, output) = try run(paraditBinary, ["serve"] + args)
            #expect(status != 0 && output.contains(message), "\(args): \(output)")
        }
    }
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
