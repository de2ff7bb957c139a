import Foundation

/// The tokenizer a diffusers pipeline folder's `tokenizer*/` holds, by its tokenizer_config.json's
/// `tokenizer_class` (CLIP or T5), else by its files.
public func loadTokenizer(folder: String) throws -> any Tokenizer {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw TokenizerError.missing("no tokenizer folder \(folder)")
    }
    let config = (try? readJSON("\(folder)/tokenizer_config.json")) as? [String: Any] ?? [:]
    let name = config["tokenizer_class"] as? String ?? ""
    if name.hasPrefix("CLIP") || (name.isEmpty && FileManager.default.fileExists(atPath: "\(folder)/merges.txt")) {
        return try CLIPTokenizer(folder: folder)
    }
    if name.hasPrefix("T5") || name.isEmpty {
        return try T5Tokenizer(folder: folder)
    }
    throw TokenizerError.invalid(file: "\(folder)/tokenizer_config.json",
                                 reason: "tokenizer_class \(name) is neither CLIP's nor T5's")
}
