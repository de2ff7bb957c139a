import Foundation

/// A diffusers (or transformers) `config.json`: the `_class_name` (`architectures`) it declares and its keys, decoded with Codable.
/// Keys are snake_case as diffusers writes them; model configs decode them with
/// `.convertFromSnakeCase` and take diffusers' defaults for absent or null keys (`value(_:default:)`).
public struct ConfigFile {
    public let path: String
    public let className: String
    let data: Data

    /// Reads `config.json` in `directory`.
    public init(directory: String) throws {
        let path = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WeightsError.cannotOpen(path: path, reason: "no such file (a diffusers model folder has config.json)")
        }
        try self.init(data: data, path: path)
    }

    /// A config given as JSON text (`path` names it in errors).
    public init(data: Data, path: String) throws {
        self.path = path
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw WeightsError.badConfig(path: path, reason: "not a JSON object")
        }
        // diffusers names the class in "_class_name", transformers in "architectures".
        guard let name = json["_class_name"] as? String ?? (json["architectures"] as? [String])?.first else {
            throw WeightsError.badConfig(path: path, reason: "no \"_class_name\" or \"architectures\" saying which model class this is")
        }
        self.data = data
        className = name
    }

    /// The config decoded as `T`; a key of the wrong type is an error naming the key.
    public func decode<T: Decodable>(_: T.Type) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(T.self, from: data)
        } catch let DecodingError.typeMismatch(type, context), let DecodingError.valueNotFound(type, context) {
            throw WeightsError.badConfig(path: path, reason: "\(Self.keyPath(context)) should be \(type)")
        } catch let DecodingError.dataCorrupted(context) {
            throw WeightsError.badConfig(path: path, reason: "\(Self.keyPath(context)): \(context.debugDescription)")
        } catch let error as WeightsError {
            throw error
        } catch {
            throw WeightsError.badConfig(path: path, reason: "\(error)")
        }
    }

    static func keyPath(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.map { key in key.intValue.map(String.init) ?? snakeCase(key.stringValue) }
        return path.isEmpty ? "the config" : "\"\(path.joined(separator: "."))\""
    }

    /// camelCase back to the snake_case the user sees in the file.
    static func snakeCase(_ s: String) -> String {
        var out = ""
        for c in s {
            if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
        }
        return out
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`, or `defaultValue` when the key is absent or null (diffusers' defaults).
    public func value<T: Decodable>(_ key: Key, default defaultValue: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? defaultValue
    }
}
