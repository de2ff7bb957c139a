/// Everything that can be wrong with a checkpoint or a config, each naming the file or tensor.
/// `description` is one line meant for the user, saying what is wrong and, where it can, what to do.
public enum WeightsError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case corrupt(path: String, reason: String)
    case missingTensor(key: String, file: String)
    case unusedTensors(keys: [String], file: String)
    case wrongShape(key: String, expected: [Int], found: [Int])
    case wrongDType(key: String, expected: String, found: String)
    case badConfig(path: String, reason: String)
    case noCheckpoint(directory: String)
    case badInput(name: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "cannot open \(path): \(reason)"
        case let .corrupt(path, reason):
            return "\(path) is not a valid safetensors file: \(reason)"
        case let .missingTensor(key, file):
            return "tensor '\(key)' is missing from \(file) (is this the right model class and checkpoint?)"
        case let .unusedTensors(keys, file):
            let shown = keys.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
            return "\(file) has \(keys.count) tensor(s) the model does not use: \(shown)\(keys.count > 5 ? ", …" : "")"
                + " (does config.json match the checkpoint?)"
        case let .wrongShape(key, expected, found):
            return "tensor '\(key)' has shape \(found), the model expects \(expected) (does config.json match the checkpoint?)"
        case let .wrongDType(key, expected, found):
            return "tensor '\(key)' is \(found), expected \(expected)"
        case let .badConfig(path, reason):
            return "\(path): \(reason)"
        case let .badInput(name, reason):
            return "input '\(name)': \(reason)"
        case let .noCheckpoint(directory):
            return "no diffusion_pytorch_model.safetensors (or its .index.json) in \(directory)"
        }
    }
}
