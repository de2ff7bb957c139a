import Foundation
import ParaDiTTensor

// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON mapping each
// tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets into the data that follows),
// plus an optional "__metadata__" map of strings. The file is memory-mapped; a tensor is converted
// to Float32 only when asked for.

/// The element types the engine reads.
public enum SafeTensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32"

    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .i64: return 8
        }
    }
}

/// Where one tensor lives in a file.
public struct SafeTensorsEntry: Sendable, Equatable {
    public var dtype: SafeTensorsDType
    public var shape: [Int]
    /// Byte offset from the start of the file, and length in bytes.
    public var offset: Int
    public var byteCount: Int
    public var count: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file with a fully validated header.
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    public let entries: [String: SafeTensorsEntry]
    public let metadata: [String: String]
    private let base: UnsafeRawPointer
    private let mappedSize: Int

    /// Largest header accepted (the format's own limit is 100 MB).
    static let maxHeaderBytes = 100_000_000

    public init(path: String) throws {
        self.path = path
        // Non-blocking, so a FIFO or device is refused below instead of waiting for a writer.
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else { throw WeightsError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw WeightsError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw WeightsError.cannotOpen(path: path, reason: "not a regular file (a FIFO, device or folder): give a safetensors file")
        }
        let size = Int(st.st_size)
        guard size >= 8 else { throw WeightsError.corrupt(path: path, reason: "\(size) bytes, shorter than the 8-byte header length") }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw WeightsError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(map)
        mappedSize = size
        do {
            (entries, metadata) = try Self.parseHeader(UnsafeRawBufferPointer(start: base, count: size), path: path)
        } catch {
            munmap(map, size)
            throw error
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), mappedSize) }

    public var names: [String] { entries.keys.sorted() }

    /// The tensor as Float32 (F16 and BF16 widened exactly); integer tensors are refused.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw WeightsError.missingTensor(key: name, file: path) }
        let out = Tensor(uninitialized: e.shape)
        let src = base + e.offset
        switch e.dtype {
        case .f32: UnsafeMutableRawPointer(out.data).copyMemory(from: src, byteCount: e.byteCount)
        case .f16: convertHalfToFloat(count: e.count, src, out.data)
        case .bf16: convertBFloat16ToFloat(count: e.count, src, out.data)
        case .i64, .i32: throw WeightsError.wrongDType(key: name, expected: "a floating-point type", found: e.dtype.rawValue)
        }
        return out
    }

    /// An F32 tensor read in place from the mapping (no copy; it keeps this file open), or nil when
    /// it is another type or not 4-byte aligned. The mapping is read-only: weights are never written.
    public func mappedTensor(_ name: String) -> Tensor? {
        guard let e = entries[name], e.dtype == .f32, Int(bitPattern: base + e.offset) % 4 == 0, e.count > 0 else { return nil }
        let data = UnsafeMutableRawPointer(mutating: base + e.offset).assumingMemoryBound(to: Float.self)
        return Tensor(shape: e.shape, storage: TensorStorage(borrowing: data, count: e.count, owner: self), offset: 0)
    }

    /// The stored bytes of a tensor, in place in the mapped file (alive as long as this file).
    public func bytes(_ name: String) throws -> UnsafeRawPointer {
        guard let e = entries[name] else { throw WeightsError.missingTensor(key: name, file: path) }
        return base + e.offset
    }

    /// Integer or floating values widened to Double (for timesteps, ids and labels).
    public func values(_ name: String) throws -> [Double] {
        guard let e = entries[name] else { throw WeightsError.missingTensor(key: name, file: path) }
        let src = base + e.offset
        switch e.dtype {
        case .i64: return (0..<e.count).map { Double(src.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        case .i32: return (0..<e.count).map { Double(src.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        default: return try tensor(name).scalars.map(Double.init)
        }
    }

    // MARK: Header

    /// The validated header of a whole safetensors file held in `file` (`path` names it in errors):
    /// what `init(path:)` does after mapping the file, public for fuzzing.
    public static func parseHeader(_ file: UnsafeRawBufferPointer, path: String) throws
        -> (entries: [String: SafeTensorsEntry], metadata: [String: String])
    {
        func corrupt(_ reason: String) -> WeightsError { .corrupt(path: path, reason: reason) }
        let size = file.count
        guard let base = file.baseAddress, size >= 8 else { throw corrupt("\(size) bytes, shorter than the 8-byte header length") }
        let declared = base.loadUnaligned(as: UInt64.self).littleEndian
        guard declared <= UInt64(min(maxHeaderBytes, size - 8)) else {
            throw corrupt("header length \(declared) exceeds the file (\(size) bytes) or the 100 MB limit")
        }
        let headerLength = Int(declared)
        let header: (entries: [(String, RawHeaderEntry)], metadata: [String: String])
        do {
            header = try SafeTensorsHeaderReader.read(UnsafeRawBufferPointer(start: base + 8, count: headerLength))
        } catch let e as HeaderSyntaxError {
            throw corrupt("header is not valid JSON: \(e.reason)")
        }
        let dataStart = 8 + headerLength, dataSize = size - dataStart
        var entries: [String: SafeTensorsEntry] = [:]
        entries.reserveCapacity(header.entries.count)
        for (name, raw) in header.entries {
            guard entries[name] == nil else { throw corrupt("tensor '\(name)' appears twice in the header") }
            entries[name] = try parseEntry(name, raw, dataStart: dataStart, dataSize: dataSize, corrupt: corrupt)
        }
        try checkCoverage(entries, dataStart: dataStart, dataSize: dataSize, corrupt: corrupt)
        return (entries, header.metadata)
    }

    static func parseEntry(_ name: String, _ raw: RawHeaderEntry, dataStart: Int, dataSize: Int,
                           corrupt: (String) -> WeightsError) throws -> SafeTensorsEntry {
        guard let dtypeName = raw.dtype else { throw corrupt("tensor '\(name)' has no dtype") }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw corrupt("tensor '\(name)' has dtype \(dtypeName); supported: F32, F16, BF16, I64, I32")
        }
        guard let shape = raw.shape else { throw corrupt("tensor '\(name)' has no shape") }
        guard let offsets = raw.dataOffsets, offsets.count == 2, offsets[0] <= offsets[1], offsets[1] <= dataSize else {
            throw corrupt("tensor '\(name)' has data_offsets outside the \(dataSize)-byte data section")
        }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw corrupt("tensor '\(name)' has an impossibly large shape \(shape)") }
            count = product
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, bytes == offsets[1] - offsets[0] else {
            throw corrupt("tensor '\(name)' is \(shape) \(dtypeName) (\(count) × \(dtype.byteSize) bytes) but its offsets span \(offsets[1] - offsets[0]) bytes")
        }
        return SafeTensorsEntry(dtype: dtype, shape: shape, offset: dataStart + offsets[0], byteCount: bytes)
    }

    /// Tensors must tile the data section exactly: no overlaps, no holes.
    static func checkCoverage(_ entries: [String: SafeTensorsEntry], dataStart: Int, dataSize: Int,
                              corrupt: (String) -> WeightsError) throws {
        var end = dataStart
        for (name, e) in entries.sorted(by: { ($0.value.offset, $0.value.byteCount) < ($1.value.offset, $1.value.byteCount) }) {
            if e.offset < end { throw corrupt("tensor '\(name)' overlaps the tensor before it") }
            if e.offset > end { throw corrupt("the data section has a hole before tensor '\(name)'") }
            end = e.offset + e.byteCount
        }
        if end != dataStart + dataSize { throw corrupt("\(dataStart + dataSize - end) trailing bytes belong to no tensor") }
    }
}
