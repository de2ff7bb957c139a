import ArgumentParser
import Foundation

/// Where results go, checked before any compute: a run that would fail to write its results, or
/// overwrite what it reads, is refused up front.
enum OutputPaths {
    /// Every output's folder exists and is writable, no output is a folder, and none is an input
    /// or lies inside an input folder (the model's weights).
    static func check(_ outputs: [String], inputs: [String]) throws {
        let readFrom = inputs.map(resolved)
        let targets = outputs.map(resolved)
        if let twice = targets.indices.first(where: { targets[..<$0].contains(targets[$0]) }) {
            throw ValidationError("\(outputs[twice]) is given for two outputs; give each output its own file")
        }
        for path in outputs {
            let full = resolved(path), folder = (full as NSString).deletingLastPathComponent
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw ValidationError("cannot write \(path): the folder \(folder) does not exist")
            }
            guard FileManager.default.isWritableFile(atPath: folder) else {
                throw ValidationError("cannot write \(path): the folder \(folder) is not writable")
            }
            if FileManager.default.fileExists(atPath: full, isDirectory: &isFolder), isFolder.boolValue {
                throw ValidationError("cannot write \(path): it is a folder; give a file name")
            }
            if let input = readFrom.first(where: { full == $0 || full.hasPrefix($0 + "/") }) {
                throw ValidationError("\(path) would overwrite the input \(input); write the output elsewhere")
            }
        }
    }

    /// `image.png` → `image_2.png` for the second of several images (only the file name changes).
    static func numbered(_ path: String, _ n: Int) -> String {
        let ns = path as NSString, ext = ns.pathExtension
        return ns.deletingPathExtension + "_\(n)" + (ext.isEmpty ? "" : ".\(ext)")
    }

    /// Runs every write; if one fails, removes what the earlier ones wrote, so a failed run leaves
    /// no partial set of results (each write is itself atomic).
    static func allOrNothing(_ writes: [(path: String, write: () throws -> Void)]) throws {
        var written: [String] = []
        do {
            for (path, write) in writes {
                try write()
                written.append(path)
            }
        } catch {
            for path in written { try? FileManager.default.removeItem(atPath: path) }
            throw error
        }
    }

    static func resolved(_ path: String) -> String {
        (URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path as NSString).standardizingPath
    }
}
