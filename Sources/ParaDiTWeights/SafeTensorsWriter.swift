import Foundation
import ParaDiTTensor

/// A value to store in a safetensors file: Float32 data, or integers stored as I64.
public enum SafeTensorsValue: Sendable {
    case float(Tensor)
    case int64([Int64], shape: [Int])
}

/// Writes `tensors` to a safetensors file at `path`, in name order, F32 (or I64), with the header
/// padded with spaces to a multiple of 8 bytes as the format allows.
public func writeSafeTensors(_ tensors: [String: SafeTensorsValue], metadata: [String: String] = [:], to path: String) throws {
    var header: [String: Any] = [:]
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    var payload = Data()
    for name in tensors.keys.sorted() {
        let begin = payload.count
        let (dtype, shape): (String, [Int])
        switch tensors[name]! {
        case let .float(t):
            withExtendedLifetime(t) { payload.append(UnsafeBufferPointer(start: t.data, count: t.count)) }
            (dtype, shape) = ("F32", t.shape)
        case let .int64(values, s):
            guard values.count == s.reduce(1, *) else {
                throw WeightsError.badConfig(path: path, reason: "tensor '\(name)' has \(values.count) values for shape \(s)")
            }
            values.map(\.littleEndian).withUnsafeBufferPointer { payload.append($0) }
            (dtype, shape) = ("I64", s)
        }
        header[name] = ["dtype": dtype, "shape": shape, "data_offsets": [begin, payload.count]]
    }
    var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    json.append(contentsOf: [UInt8](repeating: UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
    var file = Data()
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
    file.append(json)
    file.append(payload)
    do {
        // Written beside the target and renamed into place: a reader never sees a partial file.
        try file.write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw WeightsError.cannotOpen(path: path, reason: error.localizedDescription)
    }
}
