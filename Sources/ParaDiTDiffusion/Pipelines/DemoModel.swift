import Foundation

/// The trained demo model the repository ships (models/digits-dit, made by tools/train_demo.py): a
/// class-conditional DiT of scikit-learn's digits with its VAE and a classifier that judges its
/// images. It is what `paradit generate` and `paradit quality` run without --model.
public enum DemoModel {
    public static let relativePath = "models/digits-dit"
    /// DDIM steps the demo runs by default (the classifier's accuracy saturates near 25).
    public static let steps = 25

    /// The folder: $PARADIT_DEMO_MODEL, else models/digits-dit under the current folder, else in the
    /// checkout the executable was built in (.build/<configuration>/paradit).
    public static func directory() throws -> String {
        let environment = ProcessInfo.processInfo.environment["PARADIT_DEMO_MODEL"]
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
            .deletingLastPathComponent()
        var candidates = [environment ?? "", FileManager.default.currentDirectoryPath + "/" + relativePath]
        var folder = executable
        for _ in 0..<3 {
            folder = folder.deletingLastPathComponent()
            candidates.append(folder.appendingPathComponent(relativePath).path)
        }
        if let found = candidates.first(where: { !$0.isEmpty && FileManager.default.fileExists(atPath: $0 + "/model_index.json") }) {
            return found
        }
        throw DemoModelError()
    }
}

public struct DemoModelError: Error, CustomStringConvertible {
    public var description: String {
        "the demo model (\(DemoModel.relativePath)) was not found in the current folder or beside the executable; "
            + "run from the repository, set PARADIT_DEMO_MODEL, or pass --model"
    }
}
