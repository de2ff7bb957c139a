import Foundation
import ParaDiTTensor
import ParaDiTWeights
import Testing

let pipelineRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("ParaDiTDiffusionTests/Fixtures/pipelines").path

@Suite("paradit generate", .serialized)
struct GenerateCommandTests {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-gen-\(UUID())").path

    func generate(_ name: String, _ extra: [String]) -> [String] {
        let args = try! JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(pipelineRoot)/\(name)/args.json"))) as! [String: Any]
        var a = ["generate", "--model", "\(pipelineRoot)/\(name)/pipeline", "--steps", "\(args["steps"]!)", "--seed", "\(args["seed"]!)",
                 "--guidance", "\(args["guidance_scale"]!)"]
        if let labels = args["class_labels"] as? [Int] { a += labels.flatMap { ["--class", "\($0)"] } } else {
            a += ["--prompt-embeds", "\(pipelineRoot)/\(name)/conditioning.safetensors", "--size", "\(args["height"]!)x\(args["width"]!)"]
        }
        return a + extra
    }

    func latentsError(_ path: String, _ name: String) throws -> Double {
        let got = try SafeTensorsFile(path: path).tensor("latents").scalars
        let want = try SafeTensorsFile(path: "\(pipelineRoot)/\(name)/expected.safetensors").tensor("latents").scalars
        let num = zip(got, want).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        return (num / want.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
    }

    @Test("writes a PNG, the latents and a JSON summary; split over ranks it gives diffusers' latents",
          arguments: [("pixart", "serial"), ("pixart", "cfg=2,ulysses=2"), ("sd3", "ring=2"), ("flux", "ulysses=2"), ("dit", "cfg=2,ring=2")])
    func generates(name: String, parallel: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let message = runCommand(generate(name, ["--output", "\(dir)/out.png", "--save-latents", "\(dir)/l.safetensors",
                                                 "--json", "\(dir)/s.json", "--parallel", parallel]))
        #expect(message == nil, "\(message ?? "")")
        #expect(try latentsError("\(dir)/l.safetensors", name) <= 1e-4)
        let png = try Data(contentsOf: URL(fileURLWithPath: name == "dit" ? "\(dir)/out_1.png" : "\(dir)/out.png"))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/s.json"))) as! [String: Any]
        #expect((summary["step_seconds"] as? [Double])?.count == summary["steps"] as? Int)
        #expect(summary["parallel"] as? String == parallel)
    }

    @Test("under mpirun the ranks give diffusers' latents")
    func mpi() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, out, _) = try mpirun(2, generate("sd3", ["--output", "\(dir)/out.png", "--save-latents", "\(dir)/l.safetensors",
                                                              "--parallel", "ulysses=2"]))
        #expect(status == 0, "\(out)")
        #expect(out.contains("image → \(dir)/out.png"), "\(out)")
        #expect(try latentsError("\(dir)/l.safetensors", "sd3") <= 1e-4)
    }

    /// DiT's head reads block 0's embedding, which its last stage must therefore load too.
    @Test("under mpirun PipeFusion stages load only their blocks and, warmed up throughout, give diffusers' latents",
          arguments: ["pixart", "dit"])
    func mpiPipeFusion(name: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, out, _) = try mpirun(2, generate(name, ["--output", "\(dir)/out.png", "--save-latents", "\(dir)/l.safetensors",
                                                             "--parallel", "pipefusion=2", "--warmup-steps", "10"]))
        #expect(status == 0, "\(out)")
        #expect(out.contains("this stage holds"), "\(out)")
        #expect(try latentsError("\(dir)/l.safetensors", name) <= 1e-4)
    }

    /// The whole transformer's INT8 linear weights, then a PipeFusion stage's under mpirun: the
    /// stage holds only its blocks', in INT8 (a quarter of their Float32 bytes; the embedders and
    /// output layers, which every stage holds, stay Float32 and are most of this tiny model's bytes).
    @Test("under mpirun a PipeFusion stage holds only its blocks' weights, in the chosen type")
    func stageWeights() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func bytes(_ json: String) throws -> Int {
            let s = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
            return s["transformer_weight_bytes"] as! Int
        }
        #expect(runCommand(generate("pixart", ["--output", "\(dir)/a.png", "--json", "\(dir)/f32.json", "--weights-dtype", "f32"])) == nil)
        #expect(runCommand(generate("pixart", ["--output", "\(dir)/b.png", "--json", "\(dir)/int8.json", "--weights-dtype", "int8"])) == nil)
        let (whole, wholeInt8) = (try bytes("\(dir)/f32.json"), try bytes("\(dir)/int8.json"))
        #expect(wholeInt8 < whole * 3 / 4 && wholeInt8 > whole / 5, "int8 \(wholeInt8) of \(whole)")
        let (status, out, _) = try mpirun(2, generate("pixart", ["--output", "\(dir)/c.png", "--json", "\(dir)/stage.json",
                                                                 "--parallel", "pipefusion=2", "--weights-dtype", "int8"]))
        #expect(status == 0, "\(out)")
        let stage = try bytes("\(dir)/stage.json")
        #expect(stage < wholeInt8 && stage > 0, "stage \(stage) of \(wholeInt8)")
        #expect(out.contains("MiB resident (int8)"), "\(out)")
    }

    /// An in-place rewrite changes the file a hard link shares; a rename into place leaves it as it was.
    @Test("the image, latents and JSON replace older files atomically: a reader of the old file never sees it rewritten")
    func atomicOutputs() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outputs = ["\(dir)/out.png", "\(dir)/l.safetensors", "\(dir)/s.json"]
        for path in outputs {
            try Data("old".utf8).write(to: URL(fileURLWithPath: path))
            try FileManager.default.linkItem(atPath: path, toPath: path + ".reader")
        }
        #expect(runCommand(generate("sd3", ["--output", outputs[0], "--save-latents", outputs[1], "--json", outputs[2]])) == nil)
        for path in outputs {
            #expect(try String(contentsOfFile: path + ".reader", encoding: .utf8) == "old", "\(path) was rewritten in place")
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count > 3, "\(path) not written")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasSuffix(".reader") }
        #expect(Set(leftovers) == ["out.png", "l.safetensors", "s.json"], "\(leftovers)")
    }

    @Test("output paths are checked before any compute; several images are numbered in the file name only")
    func outputPaths() throws {
        try FileManager.default.createDirectory(atPath: dir + "/v.png", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let weights = "\(pipelineRoot)/dit/pipeline/transformer/diffusion_pytorch_model.safetensors"
        for (output, expected) in [("/nonexistent-folder/x.png", "the folder /nonexistent-folder does not exist"),
                                   (dir + "/v.png", "it is a folder"), (weights, "would overwrite the input")] {
            let start = Date()
            let message = runCommand(generate("dit", ["--output", output])) ?? "accepted"
            #expect(message.contains(expected), "\(output): \(message)")
            #expect(Date().timeIntervalSince(start) < 5)
        }
        let json = runCommand(generate("dit", ["--output", dir + "/x.png", "--json", "/nonexistent-folder/s.json"])) ?? "accepted"
        #expect(json.contains("does not exist") && !FileManager.default.fileExists(atPath: dir + "/x_1.png"), "\(json)")
        let same = runCommand(generate("dit", ["--output", dir + "/x.png", "--json", dir + "/x.png"])) ?? "accepted"
        #expect(same.contains("given for two outputs"), "\(same)")
        // A write that fails after compute (a file name too long for the file system) removes the images already written.
        let long = dir + "/" + String(repeating: "j", count: 300) + ".json"
        let failed = runCommand(generate("dit", ["--output", dir + "/y.png", "--save-latents", dir + "/l.safetensors", "--json", long]))
        #expect(failed != nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["v.png"])
        // Two classes, two images: v.png/img_1.png and v.png/img_2.png (not v/img_1.png).
        #expect(runCommand(generate("dit", ["--output", dir + "/v.png/img.png"])) == nil)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir + "/v.png")) == ["img_1.png", "img_2.png"])
    }

    /// The README's main command: the shipped digits model, a sheet of the ten classes.
    @Test("without arguments: a labelled sheet of the ten digits, which the shipped classifier recognises (≥ 90 %)")
    func demoSheet() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(runCommand(["generate", "--output", dir + "/sheet.png", "--json", dir + "/s.json"]) == nil)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/s.json"))) as! [String: Any]
        #expect(summary["images"] as? Int == 80 && summary["outputs"] as? [String] == [dir + "/sheet.png"], "\(summary)")
        #expect(summary["width"] as? Int == 580 && summary["height"] as? Int == 684, "\(summary)")
        let accuracy = try #require(summary["classifier_accuracy"] as? Double)
        #expect(accuracy >= 0.9, "recognised \(accuracy)")
        #expect(FileManager.default.fileExists(atPath: dir + "/sheet.png"))
    }

    @Test("100 demo samples, 10 per class, are recognised ≥ 90 % serially and under cfg=2,ulysses=2")
    func demoAccuracy() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(runCommand(["quality", "--steps", "25", "--parallel", "cfg=2,ulysses=2", "--json", dir + "/q.json"]) == nil)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/q.json"))) as! [String: Any]
        #expect(report["images"] as? Int == 100, "\(report)")
        #expect((report["serial_accuracy"] as? Double ?? 0) >= 0.9 && (report["parallel_accuracy"] as? Double ?? 0) >= 0.9, "\(report)")
        #expect((report["latent_psnr"] as? Double ?? 0) > 100, "exact methods equal serial: \(report)")
    }

    @Test("quality --weights-dtype int8 measures INT8 weights against the stored ones: close, not identical")
    func int8Quality() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(runCommand(["quality", "--steps", "10", "--per-class", "2", "--weights-dtype", "int8", "--json", dir + "/q.json"]) == nil)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/q.json"))) as! [String: Any]
        let psnr = report["latent_psnr"] as? Double ?? 0
        #expect(report["weights_dtype"] as? String == "int8" && psnr > 35 && psnr < 100, "\(report)")
    }

    @Test("--cache fbcache: the JSON and summary report the steps skipped, under PipeFusion too; a bad spec is refused")
    func stepCache() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(runCommand(["generate", "--per-class", "1", "--cache", "fbcache:0.2", "--output", dir + "/c.png", "--json", dir + "/c.json"]) == nil)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/c.json"))) as! [String: Any]
        #expect(summary["cache"] as? String == "fbcache:0.2" && (summary["steps_skipped"] as? Int ?? 0) > 0, "\(summary)")
        // Under PipeFusion each patch decides; the count is in steps, a patch counting as its share.
        #expect(runCommand(["generate", "--per-class", "1", "--cache", "fbcache:0.2", "--parallel", "pipefusion=2", "--patches", "4",
                            "--output", dir + "/p.png", "--json", dir + "/p.json"]) == nil)
        let piped = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/p.json"))) as! [String: Any]
        #expect((piped["steps_skipped"] as? Double ?? 0) > 0, "\(piped)")
        let message = runCommand(["generate", "--output", dir + "/x.png", "--cache", "fbcache:-1"]) ?? "accepted"
        #expect(message.contains("--cache"), "\(message)")
        // Flux joins its streams midway; the cached residual is taken in the joined form.
        #expect(runCommand(generate("flux", ["--output", dir + "/f.png", "--cache", "teacache:1"])) == nil)
    }

    @Test("bad input is one line saying what to fix")
    func errors() {
        let m = runCommand(["generate", "--model", "/nonexistent"]) ?? ""
        #expect(m.contains("model_index.json"), "\(m)")
        let size = runCommand(generate("sd3", ["--output", "\(dir)/x.png", "--size", "10x16"])) ?? ""
        #expect(size.contains("height 10 is not a positive multiple of 4"), "\(size)")
        let cfg = runCommand(generate("flux", ["--output", "\(dir)/x.png", "--parallel", "cfg=2"])) ?? ""
        #expect(cfg.contains("cfg=2"), "\(cfg)")
        // Sizes and counts are checked before anything is allocated (these crashed or ran out of memory).
        for size in ["2147483648x2147483648", "100000x100000"] {
            let message = runCommand(generate("sd3", ["--output", "\(dir)/x.png", "--size", size])) ?? "accepted"
            #expect(message.contains("above 16384 pixels"), "\(size): \(message)")
        }
        // The demo's SD VAE decodes 512 channels at full resolution: terabytes at 16384².
        let memory = runCommand(["generate", "--size", "16384x16384", "--output", "\(dir)/x.png"]) ?? "accepted"
        #expect(memory.contains("GB to decode, this machine has"), "\(memory)")
        let steps = runCommand(generate("flux", ["--output", "\(dir)/x.png", "--steps", "4611686018427387904"])) ?? "accepted"
        #expect(steps.contains("must be 1...10000"), "\(steps)")
        for g in ["inf", "nan", "-1"] {
            let guidance = runCommand(["generate", "--guidance=\(g)"]) ?? ""
            #expect(guidance.contains("--guidance must be a finite number, 0 or more"), "\(g): \(guidance)")
        }
        let embeds = runCommand(["generate", "--prompt-embeds", "x.safetensors"]) ?? ""
        #expect(embeds.contains("--prompt-embeds need --model"), "\(embeds)")
    }
}
