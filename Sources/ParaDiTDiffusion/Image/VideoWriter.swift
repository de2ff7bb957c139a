import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// Where a video goes, by the output path: `clip.mp4` H.264/yuv420p through ffmpeg, `clip.png` an
/// animated PNG, a path without an extension a folder of `frame_0000.png` ….
public enum VideoOutput: Equatable {
    case mp4(String), animatedPNG(String), frames(String)

    /// The frames per second the files play at (WanPipeline's examples export at 16).
    public static let fps = 16

    public init(path: String) throws {
        switch (path as NSString).pathExtension.lowercased() {
        case "mp4": self = .mp4(path)
        case "png", "apng": self = .animatedPNG(path)
        case "": self = .frames(path)
        case let other:
            throw WeightsError.badInput(name: "output", reason: "\(path): .\(other) is not a video output; "
                                        + "use .mp4, .png (animated) or a folder name without an extension")
        }
    }

    /// Refuses before any compute what cannot be written: mp4 without ffmpeg on `searchPath` (PATH).
    public func check(searchPath: String? = nil) throws {
        guard case let .mp4(path) = self else { return }
        guard Self.ffmpeg(searchPath: searchPath) != nil else {
            throw WeightsError.badInput(name: "output", reason: "\(path): writing mp4 needs ffmpeg on PATH "
                                        + "(apt-get install ffmpeg), or write an animated .png or a folder of frames")
        }
    }

    static func ffmpeg(searchPath: String? = nil) -> String? {
        (searchPath ?? ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
            .map { "\($0)/ffmpeg" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The frames of decoded video [B, 3, F, H, W] (in [−1, 1]) as 8-bit images, per sample.
    public static func frames(_ video: Tensor) throws -> [[RGBImage]] {
        guard video.rank == 5, video.size(1) == 3 else {
            throw WeightsError.badInput(name: "video", reason: "has shape \(video.shape), expected [B, 3, F, H, W]")
        }
        let (b, f, h, w) = (video.size(0), video.size(2), video.size(3), video.size(4))
        let images = try VaeImageProcessor.postprocess(permuted(video, [0, 2, 1, 3, 4]).reshaped([b * f, 3, h, w]))
        return (0..<b).map { Array(images[($0 * f)..<(($0 + 1) * f)]) }
    }

    /// Writes one sample's frames (all or nothing: a temporary file or folder renamed into place).
    public func write(_ frames: [RGBImage]) throws {
        switch self {
        case let .animatedPNG(path):
            try Data(PNGWriter.encodeAnimated(frames, fps: Self.fps))
                .write(to: URL(fileURLWithPath: path), options: .atomic)
        case let .frames(folder):
            let staging = folder + ".partial-\(getpid())"
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: false)
            for (i, frame) in frames.enumerated() {
                try Data(PNGWriter.encode(frame))
                    .write(to: URL(fileURLWithPath: "\(staging)/frame_\(String(format: "%04d", i)).png"))
            }
            try? FileManager.default.removeItem(atPath: folder)
            try FileManager.default.moveItem(atPath: staging, toPath: folder)
        case let .mp4(path):
            try encodeMP4(frames, to: path)
        }
    }

    func encodeMP4(_ frames: [RGBImage], to path: String) throws {
        guard let ffmpeg = Self.ffmpeg(), let first = frames.first else { try check(); return }
        let staging = (path as NSString).deletingPathExtension + ".partial-\(getpid()).mp4"
        let process = Process(), input = Pipe(), errors = Pipe()
        process.executableURL = URL(fileURLWithPath: ffmpeg)
        process.arguments = ["-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                             "-s", "\(first.width)x\(first.height)", "-r", "\(Self.fps)", "-i", "-",
                             "-c:v", "libx264", "-pix_fmt", "yuv420p", staging]
        (process.standardInput, process.standardError, process.standardOutput) = (input, errors, FileHandle.nullDevice)
        try process.run()
        for frame in frames { input.fileHandleForWriting.write(Data(frame.pixels)) }
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            try? FileManager.default.removeItem(atPath: staging)
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw ImageError.cannotWrite(path: path, reason: "ffmpeg failed: \(message.prefix(300))")
        }
        // rename(2) replaces the target in one step: a reader never sees a partial file.
        guard rename(staging, path) == 0 else {
            try? FileManager.default.removeItem(atPath: staging)
            throw ImageError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
    }
}

extension PNGWriter {
    /// An animated PNG (APNG) of `frames`, looping, each shown 1/fps s: IHDR, acTL, then per frame
    /// fcTL and its image data (IDAT for the first, so viewers without APNG show it; fdAT after).
    public static func encodeAnimated(_ frames: [RGBImage], fps: Int) -> [UInt8] {
        let first = frames[0]
        var header: [UInt8] = []
        appendBigEndian(UInt32(first.width), to: &header)
        appendBigEndian(UInt32(first.height), to: &header)
        header += [8, 2, 0, 0, 0]
        var file = signature, sequence: UInt32 = 0
        appendChunk("IHDR", header, to: &file)
        var control: [UInt8] = []
        appendBigEndian(UInt32(frames.count), to: &control)
        appendBigEndian(0, to: &control)  // loop forever
        appendChunk("acTL", control, to: &file)
        for (i, frame) in frames.enumerated() {
            var fc: [UInt8] = []
            for v in [sequence, UInt32(frame.width), UInt32(frame.height), 0, 0] { appendBigEndian(v, to: &fc) }
            fc += [0, 1, UInt8(fps >> 8), UInt8(fps & 0xFF), 0, 0]  // delay 1/fps, dispose none, blend source
            appendChunk("fcTL", fc, to: &file)
            sequence += 1
            let data = zlib(filtered(frame))
            if i == 0 {
                appendChunk("IDAT", data, to: &file)
            } else {
                var fd: [UInt8] = []
                appendBigEndian(sequence, to: &fd)
                appendChunk("fdAT", fd + data, to: &file)
                sequence += 1
            }
        }
        appendChunk("IEND", [], to: &file)
        return file
    }
}
