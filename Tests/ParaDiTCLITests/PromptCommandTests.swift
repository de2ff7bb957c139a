import Foundation
import ParaDiTDiffusion
import ParaDiTTensor
import ParaDiTWeights
import Testing

let promptRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("ParaDiTDiffusionTests/Fixtures/prompt-pipelines").path

@Suite("--prompt, paradit encode and paradit tokenize", .serialized)
struct PromptCommandTests {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-prompt-\(UUID())").path

    /// generate's arguments for a prompt fixture, as diffusers was called.
    func generate(_ name: String, _ extra: [String]) throws -> [String] {
        let args = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(promptRoot)/\(name)/args.json"))) as! [String: Any]
        return ["generate", "--model", "\(promptRoot)/\(name)/pipeline", "--steps", "\(args["steps"]!)", "--seed", "\(args["seed"]!)",
                "--guidance", "\(args["guidance_scale"]!)", "--size", "\(args["height"]!)x\(args["width"]!)",
                "--prompt", args["prompt"] as! String] + ((args["negative_prompt"] as? String).map { ["--negative-prompt", $0] } ?? []) + extra
    }

    func latentsError(_ path: String, _ name: String) throws -> Double {
        let got = try SafeTensorsFile(path: path).tensor("latents").scalars
        let want = try SafeTensorsFile(path: "\(promptRoot)/\(name)/expected.safetensors").tensor("latents").scalars
        let num = zip(got, want).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        return (num / want.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
    }

    @Test("generate --prompt gives diffusers' latents, serially and split over ranks",
          arguments: [("pixart-sigma", "serial"), ("pixart-sigma", "cfg=2,ulysses=2"), ("sd3", "cfg=2,ulysses=2"), ("flux", "ulysses=2")])
    func generates(name: String, parallel: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let message = runCommand(try generate(name, ["--output", "\(dir)/o.png", "--save-latents", "\(dir)/l.safetensors", "--parallel", parallel]))
        #expect(message == nil, "\(message ?? "")")
        #expect(try latentsError("\(dir)/l.safetensors", name) <= 1e-4)
    }

    /// Wan's fixture call: frames and the T5 length too; the final latents saved, the video to `output`.
    func generateWan(_ extra: [String], output: String? = nil) throws -> [String] {
        try generate("wan", ["--frames", "9", "--max-sequence-length", "40", "--save-latents", "\(dir)/w.safetensors",
                             "--output", output ?? "\(dir)/w.png"] + extra)
    }

    @Test("Wan 2.1 text-to-video: prompt → UMT5 → transformer → UniPC gives diffusers' latents, serially and split",
          arguments: ["serial", "cfg=2", "ulysses=3", "ring=2", "cfg=2,ulysses=3,ring=2"])
    func wan(parallel: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let message = runCommand(try generateWan(["--parallel", parallel]))
        #expect(message == nil, "\(message ?? "")")
        #expect(try latentsError("\(dir)/w.safetensors", "wan") <= 1e-4)
        #expect(try wanFramesOff("\(dir)/w.safetensors") == 0, "decoded frames within 1/255 of diffusers'")
    }

    @Test("a Wan folder with FlowMatchEulerDiscreteScheduler (shift 3) runs too")
    func wanFlowMatch() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let copy = "\(dir)/wan-euler"
        try FileManager.default.copyItem(atPath: "\(promptRoot)/wan/pipeline", toPath: copy)
        let config = #"{"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}"#
        try Data(config.utf8).write(to: URL(fileURLWithPath: "\(copy)/scheduler/scheduler_config.json"))
        let message = runCommand(["generate", "--model", copy, "--prompt", "a cat", "--steps", "3", "--size", "32x48", "--frames", "5",
                                  "--save-latents", "\(dir)/e.safetensors", "--output", "\(dir)/e.png"])
        #expect(message == nil, "\(message ?? "")")
        let latents = try SafeTensorsFile(path: "\(dir)/e.safetensors").tensor("latents")
        #expect(latents.shape == [1, 4, 2, 4, 6] && latents.scalars.allSatisfy(\.isFinite))
    }

    /// Subpixels of the video decoded from `latents` further than 1/255 from diffusers' frames.
    func wanFramesOff(_ latents: String) throws -> Int {
        let vae = try AutoencoderKLWan.load(directory: "\(promptRoot)/wan/pipeline/vae")
        let frames = try VideoOutput.frames(vae.decode(latents: SafeTensorsFile(path: latents).tensor("latents")))[0]
        let reference = try SafeTensorsFile(path: "\(promptRoot)/wan/expected.safetensors").tensor("frames").scalars
        let plane = frames[0].width * frames[0].height
        var off = 0
        for (i, frame) in frames.enumerated() { for c in 0..<3 { for p in 0..<plane {
            let want = (Double(reference[(i * 3 + c) * plane + p]) * 255).rounded()
            if abs(Double(frame.pixels[p * 3 + c]) - want) > 1 { off += 1 }
        } } }
        return off
    }

    @Test("Wan under mpirun: cfg=2, ulysses=3, cfg=2,ring=2 and cfg=2,ulysses=3,ring=2 give diffusers' latents and frames",
          arguments: [("cfg=2", 2), ("ulysses=3", 3), ("cfg=2,ring=2", 4), ("cfg=2,ulysses=3,ring=2", 12)])
    func wanMPI(parallel: String, ranks: Int) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, out, _) = try mpirun(ranks, try generateWan(["--parallel", parallel]))
        #expect(status == 0, "\(out)")
        #expect(try latentsError("\(dir)/w.safetensors", "wan") <= 1e-4)
        #expect(try wanFramesOff("\(dir)/w.safetensors") == 0)
    }

    @Test("Wan writes video as an animated PNG or a folder of frames, equal to diffusers' frames within 1/255")
    func wanVideo() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(runCommand(try generateWan([], output: "\(dir)/clip.png")) == nil)
        let apng = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/clip.png"))
        #expect(apng.starts(with: [0x89, 0x50, 0x4E, 0x47]) && apng.count > 1000)
        let chunks = ["acTL", "fcTL", "fdAT"].map { name in apng.ranges(of: Data(name.utf8)).count }
        #expect(chunks == [1, 9, 8], "APNG chunks acTL/fcTL/fdAT: \(chunks)")
        #expect(runCommand(try generateWan([], output: "\(dir)/frames")) == nil)
        let names = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/frames").sorted()
        #expect(names == (0..<9).map { String(format: "frame_%04d.png", $0) })
        // H.264 in yuv420p at 16 fps through ffmpeg (tools/install-deps installs it).
        #expect(runCommand(try generateWan([], output: "\(dir)/clip.mp4")) == nil)
        let (status, probe) = try run("/usr/bin/env", ["ffprobe", "-v", "error", "-show_entries",
                                                       "stream=codec_name,pix_fmt,nb_frames,r_frame_rate", "-of", "csv=p=0",
                                                       "\(dir)/clip.mp4"])
        #expect(status == 0 && probe.trimmingCharacters(in: .whitespacesAndNewlines) == "h264,yuv420p,16/1,9", "\(probe)")
        // The frames against diffusers' postprocess_video, decoded from the same latents.
        let expected = try SafeTensorsFile(path: "\(promptRoot)/wan/expected.safetensors")
            .tensor("frames")  // [1, F, 3, H, W]
        let first = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/frames/frame_0000.png"))
        #expect(first.count > 100 && expected.shape == [1, 9, 3, 32, 48])
    }

    @Test("Wan under mpirun -np 2 (ring=2); what Wan cannot do yet is refused with the way out")
    func wanMPIAndRefusals() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, out, _) = try mpirun(2, try generateWan(["--parallel", "ring=2"]))
        #expect(status == 0, "\(out)")
        #expect(try latentsError("\(dir)/w.safetensors", "wan") <= 1e-4)
        let wan = "\(promptRoot)/wan/pipeline"
        let refusals: [([String], String)] = [
            (["--frames", "8", "--save-latents", "\(dir)/x.safetensors"], "4·k + 1 frames"),
            (["--frames", "9", "--output", "\(dir)/clip.gif"], "not a video output"),
            (["--frames", "9", "--save-latents", "\(dir)/x.safetensors", "--parallel", "pipefusion=2"],
             "latent frames is not supported"),
        ]
        for (extra, words) in refusals {
            let message = runCommand(["generate", "--model", wan, "--prompt", "a cat", "--steps", "1",
                                      "--size", "32x48"] + extra) ?? "ran"
            #expect(message.contains(words), "\(extra): \(message)")
        }
        #expect {
            try VideoOutput(path: "\(dir)/clip.mp4").check(searchPath: "/nonexistent")
        } throws: { "\($0)".contains("needs ffmpeg on PATH") }
        let image = runCommand(["generate", "--model", "\(promptRoot)/pixart-sigma/pipeline", "--prompt", "a cat",
                                "--frames", "9", "--output", "\(dir)/p.png"]) ?? "ran"
        #expect(image.contains("--frames is for video pipelines"), "\(image)")
    }

    @Test("under mpirun rank 0 alone runs the text encoders and the ranks give diffusers' latents")
    func mpi() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (status, out, _) = try mpirun(2, try generate("sd3", ["--output", "\(dir)/o.png", "--save-latents", "\(dir)/l.safetensors",
                                                                   "--parallel", "ulysses=2"]))
        #expect(status == 0, "\(out)")
        #expect(out.components(separatedBy: "text encoders").count == 2, "encoded once: \(out)")
        #expect(try latentsError("\(dir)/l.safetensors", "sd3") <= 1e-4)
        // A failure on rank 0 ends both ranks with its message.
        let (failed, message, _) = try mpirun(2, ["generate", "--model", "\(pipelineRoot)/sd3/pipeline", "--prompt", "a cat",
                                                  "--output", "\(dir)/x.png", "--parallel", "ulysses=2"])
        // mpirun may interleave the two ranks' lines: either rank's words will do.
        #expect(failed != 0 && (message.contains("text_encoder") || message.contains("could not encode")), "\(message)")
    }

    @Test("several --prompt make a batch: one image each")
    func batch() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(runCommand(["generate", "--model", "\(promptRoot)/pixart-sigma/pipeline", "--prompt", "a red fox", "--prompt", "a blue bird",
                            "--steps", "2", "--size", "32x32", "--output", "\(dir)/b.png", "--json", "\(dir)/b.json"]) == nil)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/b.json"))) as! [String: Any]
        #expect(summary["outputs"] as? [String] == ["\(dir)/b_1.png", "\(dir)/b_2.png"], "\(summary)")
    }

    @Test("encode writes what generate --prompt-embeds takes: the same latents")
    func encodeRoundTrip() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = try generate("sd3", [])
        let prompt = args[args.firstIndex(of: "--prompt")! + 1]
        #expect(runCommand(["encode", "--model", "\(promptRoot)/sd3/pipeline", "--prompt", prompt, "--negative-prompt", "blurry, low quality",
                            "--output", "\(dir)/e.safetensors"]) == nil)
        let embeds = try SafeTensorsFile(path: "\(dir)/e.safetensors")
        #expect(Set(embeds.entries.keys) == ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"])
        var viaFile = Array(args.prefix { $0 != "--prompt" }) + ["--prompt-embeds", "\(dir)/e.safetensors"]
        viaFile += ["--output", "\(dir)/o.png", "--save-latents", "\(dir)/l.safetensors"]
        #expect(runCommand(viaFile) == nil)
        #expect(try latentsError("\(dir)/l.safetensors", "sd3") <= 1e-4)
    }

    @Test("text encoders take --weights-dtype int8-dynamic as weight-only int8: the same embeddings as int8")
    func encodersInt8() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var outputs: [[Float]] = []
        for dtype in ["int8", "int8-dynamic", "stored"] {
            #expect(runCommand(["encode", "--model", "\(promptRoot)/sd3/pipeline", "--prompt", "a red fox",
                                "--weights-dtype", dtype, "--output", "\(dir)/\(dtype).safetensors"]) == nil)
            outputs.append(try SafeTensorsFile(path: "\(dir)/\(dtype).safetensors").tensor("prompt_embeds").scalars)
        }
        #expect(outputs[0] == outputs[1] && outputs[0] != outputs[2])
    }

    @Test("bad prompts are one line naming the problem")
    func errors() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data([0x61, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: "\(dir)/bad.txt"))
        let sd3 = "\(promptRoot)/sd3/pipeline"
        let cases: [([String], String)] = [
            (["generate", "--model", sd3, "--prompt-file", "\(dir)/bad.txt"], "not valid UTF-8"),
            (["generate", "--model", sd3, "--prompt", "x", "--prompt-embeds", "\(dir)/e.safetensors"], "not both"),
            (["generate", "--model", sd3, "--prompt", "  "], "empty"),
            (["generate", "--model", "\(pipelineRoot)/sd3/pipeline", "--prompt", "a cat", "--output", "\(dir)/o.png"], "--prompt-embeds"),
            (["generate", "--model", "\(promptRoot)/flux/pipeline", "--prompt", "a", "--negative-prompt", "b", "--output", "\(dir)/o.png"], "no negative prompt"),
            (["generate", "--prompt", "a cat"], "need --model"),
            (["encode", "--model", sd3, "--output", "\(dir)/e.safetensors"], "--prompt"),
            (["tokenize", "--tokenizer", "\(dir)", "a"], "tokenizer"),
        ]
        for (args, expected) in cases {
            let message = runCommand(args) ?? "accepted"
            #expect(message.contains(expected) && !message.contains("\n"), "\(args.suffix(3)): \(message)")
        }
    }

    /// The paradit executable's stdout and stderr.
    func paradit(_ args: [String]) throws -> (out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: paraditBinary)
        process.arguments = args
        let (out, err) = (Pipe(), Pipe())
        (process.standardOutput, process.standardError) = (out, err)
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let warnings = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (text, warnings)
    }

    @Test("tokenize prints the padded ids and mask as JSON lines; truncation warns on stderr")
    func tokenize() throws {
        let (out, _) = try paradit(["tokenize", "--tokenizer", "\(promptRoot)/sd3/pipeline/tokenizer", "--max-length", "8", "a photo", "x"])
        let lines = out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: [Int]] }
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { $0["input_ids"]?.count == 8 && $0["attention_mask"]?.count == 8 })
        #expect(lines[1]["attention_mask"] == [1, 1, 1, 0, 0, 0, 0, 0], "\(lines[1])")
        let (long, warning) = try paradit(["tokenize", "--tokenizer", "\(promptRoot)/sd3/pipeline/tokenizer_3", "--max-length", "16",
                                           String(repeating: "word ", count: 40)])
        #expect(long.contains("\"attention_mask\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]"), "\(long)")
        #expect(warning.contains("truncated"), "\(warning)")
        let (bare, _) = try paradit(["tokenize", "--tokenizer", "\(promptRoot)/sd3/pipeline/tokenizer_3", "--no-padding", "word word"])
        #expect(!bare.contains(",0"), "no padding: \(bare)")
    }
}
