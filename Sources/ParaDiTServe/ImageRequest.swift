import Foundation

/// A JSON value as a request body holds it; integers stay integers (a seed needs all 64 bits).
enum JSONValue: Decodable, Equatable {
    case null, bool(Bool), int(Int), uint(UInt64), double(Double), string(String)
    case array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null } else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int.self) { self = .int(v) }
        else if let v = try? c.decode(UInt64.self) { self = .uint(v) }
        else if let v = try? c.decode(Double.self) { self = .double(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([JSONValue].self) { self = .array(v) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .uint, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// `POST /v1/images/generations` as OpenAI's images API defines it, with this server's extensions
/// (negative_prompt, num_inference_steps, guidance_scale, seed, class_label). Every field is
/// checked for its type and range here; what depends on the model (size multiples, labels, prompt
/// or class) is checked against the loaded pipeline.
public struct ImageRequest: Equatable {
    public enum ResponseFormat: String { case b64Json = "b64_json", url }

    public var prompt: String?
    public var n = 1
    /// `size` as OpenAI writes it, WIDTHxHEIGHT (nil: the model's native size, or "auto").
    public var width: Int?, height: Int?
    public var model: String?
    public var responseFormat = ResponseFormat.b64Json
    public var negativePrompt: String?
    public var steps: Int?
    public var guidanceScale: Double?
    public var seed: UInt64?
    public var classLabel: Int?

    /// OpenAI's limit on `n`.
    public static let maxImages = 10
    static let fields = ["prompt", "n", "size", "model", "response_format", "user", "output_format", "negative_prompt",
                         "num_inference_steps", "guidance_scale", "seed", "class_label"]
    /// Fields of OpenAI's API that this server does not do: refused rather than ignored.
    static let unsupported = ["quality", "style", "background", "moderation", "output_compression", "partial_images",
                              "stream"]

    public init(prompt: String? = nil) { self.prompt = prompt }

    public init(json body: Data) throws {
        guard case let .object(fields)? = try? JSONDecoder().decode(JSONValue.self, from: body) else {
            throw ServeError.badRequest(field: nil, "the body is not a JSON object; send {\"prompt\": \"…\"} "
                                        + "with Content-Type application/json")
        }
        for name in fields.keys.sorted() where !Self.fields.contains(name) {
            throw ServeError.badRequest(field: name, Self.unsupported.contains(name)
                ? "is not supported by this server; leave it out"
                : "unknown field; this server takes \(Self.fields.joined(separator: ", "))")
        }
        func value(_ name: String) -> JSONValue? {
            guard let v = fields[name], v != .null else { return nil }
            return v
        }
        prompt = try value("prompt").map { try Self.string($0, "prompt") }
        n = try value("n").map { try Self.integer($0, "n", in: 1...Self.maxImages) } ?? 1
        if let size = try value("size").map({ try Self.string($0, "size") }), size != "auto" {
            (width, height) = try Self.size(size)
        }
        model = try value("model").map { try Self.string($0, "model") }
        if let format = try value("response_format").map({ try Self.string($0, "response_format") }) {
            guard let f = ResponseFormat(rawValue: format) else {
                throw ServeError.badRequest(field: "response_format", "\"\(format)\" is not b64_json or url")
            }
            responseFormat = f
        }
        _ = try value("user").map { try Self.string($0, "user") }
        if let format = try value("output_format").map({ try Self.string($0, "output_format") }), format != "png" {
            throw ServeError.badRequest(field: "output_format", "\"\(format)\": this server writes png only")
        }
        negativePrompt = try value("negative_prompt").map { try Self.string($0, "negative_prompt") }
        steps = try value("num_inference_steps").map { try Self.integer($0, "num_inference_steps", in: 1...10_000) }
        guidanceScale = try value("guidance_scale").map { try Self.number($0, "guidance_scale") }
        seed = try value("seed").map { try Self.seed($0) }
        classLabel = try value("class_label").map { try Self.integer($0, "class_label", in: 0...Int(Int32.max)) }
    }

    static func string(_ v: JSONValue, _ field: String) throws -> String {
        guard case let .string(s) = v else {
            throw ServeError.badRequest(field: field, "must be a string, got \(v.typeName)")
        }
        return s
    }

    static func integer(_ v: JSONValue, _ field: String, in range: ClosedRange<Int>) throws -> Int {
        let n: Int?
        switch v {
        case let .int(i): n = i
        case let .double(d) where d == d.rounded() && abs(d) < 1e15: n = Int(d)
        case .uint: n = Int.max
        default: n = nil
        }
        guard let n else { throw ServeError.badRequest(field: field, "must be an integer, got \(v.typeName)") }
        guard range.contains(n) else {
            throw ServeError.badRequest(field: field, "\(n == Int.max ? "too large" : String(n)) is outside "
                                        + "\(range.lowerBound)…\(range.upperBound)")
        }
        return n
    }

    static func number(_ v: JSONValue, _ field: String) throws -> Double {
        let x: Double
        switch v {
        case let .int(i): x = Double(i)
        case let .uint(u): x = Double(u)
        case let .double(d): x = d
        default: throw ServeError.badRequest(field: field, "must be a number, got \(v.typeName)")
        }
        guard x.isFinite, x >= 0, x <= 1000 else {
            throw ServeError.badRequest(field: field, "\(x) is outside 0…1000")
        }
        return x
    }

    static func seed(_ v: JSONValue) throws -> UInt64 {
        switch v {
        case let .int(i) where i >= 0: return UInt64(i)
        case let .uint(u): return u
        case let .double(d) where d >= 0 && d == d.rounded() && d < 9.007_199_254_740_992e15: return UInt64(d)
        default:
            throw ServeError.badRequest(field: "seed", "must be an integer 0…18446744073709551615, got "
                                        + "\(v.typeName == "a number" ? "\(v)" : v.typeName)")
        }
    }

    /// "WIDTHxHEIGHT", as OpenAI writes sizes ("1792x1024" is landscape).
    static func size(_ text: String) throws -> (Int, Int) {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let w = parts[0], let h = parts[1], w > 0, h > 0 else {
            throw ServeError.badRequest(field: "size",
                                        "\"\(text)\" is not WIDTHxHEIGHT in pixels, e.g. 512x512, or auto")
        }
        return (w, h)
    }
}
