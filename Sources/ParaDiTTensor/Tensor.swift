import Foundation
import Synchronization

// MARK: - Element types and devices

/// The element type of a tensor's storage. Float32 is the one the kernels compute in today;
/// half-precision and 8-bit storage arrive with the kernels that read them.
public enum DType: String, Sendable, CaseIterable {
    case f32

    public var byteSize: Int { 4 }
}

/// Where a tensor's storage lives. Host memory today; a GPU backend adds its device here.
public enum Device: String, Sendable, CaseIterable {
    case cpu
}

// MARK: - Storage

/// A 64-byte-aligned block of elements owned by one or more `Tensor` views, in host memory.
///
/// Alignment to a cache line keeps SIMD loads of row starts aligned and stops two ranks' buffers
/// from sharing a line.
public final class TensorStorage: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int
    public let dtype = DType.f32
    public let device = Device.cpu
    /// What keeps borrowed memory alive (a communicator's window); nil when this storage owns it.
    let owner: AnyObject?

    public init(count: Int) {
        self.count = count
        owner = nil
        if let reused = BufferCache.shared.take(count: count) {
            base = reused
            return
        }
        var raw: UnsafeMutableRawPointer?
        let bytes = BufferCache.capacity(count) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("ParaDiT: cannot allocate \(bytes) bytes for a tensor")
        }
        base = raw.bindMemory(to: Float.self, capacity: BufferCache.capacity(count))
    }

    /// `count` elements at `base`, owned by `owner` (which this storage keeps alive): memory
    /// allocated by someone else, such as a one-sided window, seen as a tensor.
    public init(borrowing base: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        (self.base, self.count, self.owner) = (base, count, owner)
    }

    deinit {
        guard owner == nil else { return }
        if !BufferCache.shared.give(base, count: count) { free(base) }
    }
}

/// Freed tensor buffers kept for reuse, by size. A transformer allocates the same activation
/// sizes in every block; handing those back to the system and faulting fresh zeroed pages in for
/// the next block cost about a sixth of a DiT forward pass. Small buffers go to malloc as usual.
final class BufferCache: Sendable {
    static let shared = BufferCache()
    /// Buffers below this many floats are not cached (malloc recycles them well).
    static let minimum = 1 << 14
    /// At most this many bytes are kept.
    static let limitBytes = 2 << 30

    private let state = Mutex<(free: [Int: [UnsafeMutablePointer<Float>]], bytes: Int)>(([:], 0))

    /// Allocation size in floats: large buffers round up to whole 4 KiB pages so near sizes share a bucket.
    static func capacity(_ count: Int) -> Int { count < minimum ? max(count, 1) : (count + 1023) / 1024 * 1024 }

    func take(count: Int) -> UnsafeMutablePointer<Float>? {
        guard count >= Self.minimum else { return nil }
        let size = Self.capacity(count)
        return state.withLock { s in
            guard let p = s.free[size]?.popLast() else { return nil }
            s.bytes -= size * 4
            return p
        }
    }

    /// Keeps `p` for reuse; false when it is too small or the cache is full (the caller frees it).
    func give(_ p: UnsafeMutablePointer<Float>, count: Int) -> Bool {
        guard count >= Self.minimum else { return false }
        let size = Self.capacity(count)
        return state.withLock { s in
            guard s.bytes + size * 4 <= Self.limitBytes else { return false }
            s.free[size, default: []].append(p)
            s.bytes += size * 4
            return true
        }
    }
}

// MARK: - Tensor

/// A row-major tensor (its storage says the element type and the device).
///
/// `Tensor` has reference semantics, like a torch tensor: views made by `rows(_:)`, `[i]` and
/// `reshaped(_:)` share storage with their source, so a write through one is seen by all;
/// `columns(_:)` makes a strided view of some columns of every row. Kernels take raw pointers
/// (`data`) with explicit sizes; the tensor-level functions check shapes and keep the storage
/// alive around those calls. Only the tensor core, the kernels and the communicators touch
/// `data`: models call tensor-level operations.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: TensorStorage
    /// Offset of element 0 in `storage`, in elements.
    public let offset: Int

    /// A new tensor of zeros.
    public init(zeros shape: [Int]) {
        Self.checkShape(shape)
        let n = shape.reduce(1, *)
        storage = TensorStorage(count: n)
        storage.base.initialize(repeating: 0, count: max(n, 1))
        self.shape = shape
        offset = 0
    }

    /// A new tensor whose contents are set by the caller before being read.
    public init(uninitialized shape: [Int]) {
        Self.checkShape(shape)
        storage = TensorStorage(count: shape.reduce(1, *))
        self.shape = shape
        offset = 0
    }

    public init(shape: [Int], repeating value: Float) {
        self.init(uninitialized: shape)
        data.initialize(repeating: value, count: count)
    }

    public init(shape: [Int], values: [Float]) {
        let n = shape.reduce(1, *)
        guard values.count == n else {
            fatalError("Tensor(shape: \(shape)) needs \(n) values, got \(values.count)")
        }
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: n) }
    }

    /// A view of `shape` at element `offset` of `storage`.
    public init(shape: [Int], storage: TensorStorage, offset: Int) {
        self.shape = shape
        self.storage = storage
        self.offset = offset
    }

    private static func checkShape(_ shape: [Int]) {
        guard shape.allSatisfy({ $0 >= 0 }) else { fatalError("Tensor shape \(shape) has a negative size") }
    }

    // MARK: Geometry

    public var rank: Int { shape.count }
    public var count: Int { shape.reduce(1, *) }
    public var dtype: DType { storage.dtype }
    public var device: Device { storage.device }
    /// Pointer to element 0. Valid while `self` (or its storage) is alive.
    public var data: UnsafeMutablePointer<Float> { storage.base + offset }

    /// Size of `dim`; negative dims count from the end.
    public func size(_ dim: Int) -> Int { shape[dim < 0 ? shape.count + dim : dim] }

    /// Product of the sizes after the leading dimension: one "row" of a leading-dim slice.
    public var rowCount: Int { shape.isEmpty ? 1 : shape.dropFirst().reduce(1, *) }

    // MARK: Views

    /// Rows `range` of the leading dimension, sharing storage.
    public func rows(_ range: Range<Int>) -> Tensor {
        guard !shape.isEmpty, range.lowerBound >= 0, range.upperBound <= shape[0] else {
            fatalError("rows(\(range)) out of bounds for shape \(shape)")
        }
        var s = shape
        s[0] = range.count
        return Tensor(shape: s, storage: storage, offset: offset + range.lowerBound * rowCount)
    }

    /// Index `i` of the leading dimension, sharing storage.
    public subscript(i: Int) -> Tensor {
        guard !shape.isEmpty, i >= 0, i < shape[0] else {
            fatalError("index \(i) out of bounds for shape \(shape)")
        }
        return Tensor(shape: Array(shape.dropFirst()), storage: storage, offset: offset + i * rowCount)
    }

    /// `shape`'s worth of contiguous elements starting `offset` elements into this tensor, sharing
    /// storage (a block of a flat exchange buffer, say).
    public func block(_ offset: Int, _ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), offset + n <= count else {
            fatalError("block(\(offset), \(shape)) out of bounds for shape \(self.shape)")
        }
        return Tensor(shape: shape, storage: storage, offset: self.offset + offset)
    }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// The same elements under another shape; one size may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let inferred = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != inferred }.map(\.element).reduce(1, *)
            guard known > 0, count % known == 0 else {
                fatalError("cannot reshape \(shape) to \(newShape)")
            }
            s[inferred] = count / known
        }
        guard s.reduce(1, *) == count, s.allSatisfy({ $0 >= 0 }) else {
            fatalError("cannot reshape \(shape) (\(count) elements) to \(newShape)")
        }
        return Tensor(shape: s, storage: storage, offset: offset)
    }

    // MARK: Copies

    /// A stand-in of `shape` that owns no memory: the weights of blocks a pipeline stage never
    /// runs. Its elements must never be read.
    public static func placeholder(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: placeholderStorage, offset: 0)
    }

    public var isPlaceholder: Bool { storage === Self.placeholderStorage }

    private static let placeholderStorage = TensorStorage(count: 1)

    /// A deep copy with its own storage.
    public func copy() -> Tensor {
        let out = Tensor(uninitialized: shape)
        out.data.update(from: data, count: count)
        return out
    }

    /// Copies `source` (same element count) into this tensor.
    public func copy(from source: Tensor) {
        guard source.count == count else {
            fatalError("copy(from:) needs \(count) elements, source \(source.shape) has \(source.count)")
        }
        withExtendedLifetime(source) { data.update(from: source.data, count: count) }
    }

    public var scalars: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// Element at a full multi-index (slow; for tests and debugging).
    public subscript(index index: [Int]) -> Float {
        guard index.count == shape.count else { fatalError("index \(index) does not match shape \(shape)") }
        var flat = 0
        for (i, n) in zip(index, shape) {
            guard i >= 0, i < n else { fatalError("index \(index) out of bounds for shape \(shape)") }
            flat = flat * n + i
        }
        return data[flat]
    }
}

// MARK: - Checks

/// Fails with a message when `condition` is false. Unlike `precondition`, it survives `-Ounchecked`,
/// so shape errors stay loud in release builds; keep it out of inner loops.
@inline(__always)
public func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("ParaDiT: " + message()) }
}

// MARK: - Strided views

/// Columns `columns` of every row of a row-major tensor, a row being its last dimension: a
/// strided view sharing the tensor's storage, as a fused q|k|v projection hands q, k and v to
/// attention. The view keeps the storage alive.
public struct StridedView: @unchecked Sendable {
    public let tensor: Tensor
    public let columns: Range<Int>

    /// Elements between the starts of consecutive rows.
    public var rowStride: Int { tensor.size(-1) }
    public var rows: Int { tensor.count / max(rowStride, 1) }
    public var width: Int { columns.count }
    /// Element (0, 0) of the view, for kernels.
    public var data: UnsafeMutablePointer<Float> { tensor.data + columns.lowerBound }

    /// Columns `range` of the view (counted from the view's first column).
    public func columns(_ range: Range<Int>) -> StridedView {
        check(range.lowerBound >= 0 && range.upperBound <= width, "columns \(range) out of bounds for a view of \(width)")
        return StridedView(tensor: tensor, columns: (columns.lowerBound + range.lowerBound)..<(columns.lowerBound + range.upperBound))
    }

    /// Rows `range` of the view (rows counted over every leading index).
    public func rows(_ range: Range<Int>) -> StridedView {
        check(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) out of bounds for a view of \(rows) rows")
        let flat = tensor.reshaped([rows, rowStride]).rows(range)
        return StridedView(tensor: flat, columns: columns)
    }
}

extension Tensor {
    /// Columns `range` of every row (the last dimension), as a strided view.
    public func columns(_ range: Range<Int>) -> StridedView {
        check(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= size(-1), "columns \(range) out of bounds for \(shape)")
        return StridedView(tensor: self, columns: range)
    }

    /// The whole tensor as a view of its rows.
    public var allColumns: StridedView { columns(0..<size(-1)) }
}
