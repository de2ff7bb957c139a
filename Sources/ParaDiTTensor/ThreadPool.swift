import Foundation
import Synchronization
import CParaDiTBLAS

/// A fixed set of worker threads that a rank uses for its kernels.
///
/// Every rank owns one pool of an explicit size, so that several ranks on one machine split the
/// cores instead of oversubscribing them. BLAS is always called single-threaded from inside the
/// pool (see `BLAS.configureForPool`), which keeps the whole engine's thread count equal to the
/// sum of the pools. Workers are plain OS threads: waiting on them never blocks Swift's
/// cooperative pool.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int

    // Heap-allocated so their addresses never move (pthread objects must not be copied).
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let finished = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var generation = 0
    private var doneWorkers = 0
    private var job: ((Int, Int) -> Void)?
    private var jobCount = 0
    private let next = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private var shuttingDown = false
    private var workspace: TensorStorage?
    private let workspaceBusy = Atomic<Bool>(false)
    private var workers: [pthread_t] = []

    /// A pool of `threads` threads in all: the caller of `parallelFor` is worker 0.
    public init(threads: Int) {
        check(threads >= 1, "a thread pool needs at least one thread, got \(threads)")
        threadCount = threads
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(finished, nil)
        BLAS.useSingleThread()
        for worker in 1..<threads {
            let box = Unmanaged.passRetained(WorkerArgs(pool: self, index: worker))
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { raw in
                let args = Unmanaged<WorkerArgs>.fromOpaque(raw!).takeRetainedValue()
                args.pool.workerLoop(index: args.index)
                return nil
            }, box.toOpaque())
            check(rc == 0, "cannot start pool thread \(worker): pthread_create returned \(rc)")
            workers.append(tid)
        }
    }

    deinit {
        pthread_mutex_lock(mutex)
        shuttingDown = true
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for t in workers { pthread_join(t, nil) }
        pthread_cond_destroy(wake)
        pthread_cond_destroy(finished)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        wake.deallocate()
        finished.deallocate()
    }

    /// Runs `body(item, worker)` for every `item` in `0..<count`, spread over the pool's threads,
    /// and returns when all have finished. `worker` is in `0..<threadCount` and is unique among
    /// concurrently running bodies, so it can index per-thread scratch space.
    /// A nested call from inside a body runs serially on the calling thread.
    public func parallelFor(_ count: Int, _ body: (_ item: Int, _ worker: Int) -> Void) {
        if count <= 0 { return }
        if threadCount == 1 || count == 1 || !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            for i in 0..<count { body(i, 0) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            pthread_mutex_lock(mutex)
            job = escaping
            jobCount = count
            next.store(0, ordering: .relaxed)
            doneWorkers = 0
            generation &+= 1
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)

            drain(escaping, count: count, worker: 0)

            pthread_mutex_lock(mutex)
            while doneWorkers < threadCount - 1 { pthread_cond_wait(finished, mutex) }
            job = nil
            pthread_mutex_unlock(mutex)
        }
        busy.store(false, ordering: .releasing)
    }

    /// `parallelFor` over `count` items grouped into at most `threadCount` contiguous chunks:
    /// `body(range, worker)`. For cheap per-item work where one call per item costs too much.
    public func parallelChunks(_ count: Int, minChunk: Int = 1, _ body: (_ range: Range<Int>, _ worker: Int) -> Void) {
        if count <= 0 { return }
        let chunks = max(1, min(threadCount, count / max(minChunk, 1)))
        parallelFor(chunks) { c, w in
            body((c * count / chunks)..<((c + 1) * count / chunks), w)
        }
    }

    private func drain(_ body: (Int, Int) -> Void, count: Int, worker: Int) {
        while true {
            let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if i >= count { return }
            body(i, worker)
        }
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            pthread_mutex_lock(mutex)
            while generation == seen && !shuttingDown { pthread_cond_wait(wake, mutex) }
            if shuttingDown { pthread_mutex_unlock(mutex); return }
            seen = generation
            var body = job
            let count = jobCount
            pthread_mutex_unlock(mutex)

            drain(body!, count: count, worker: index)
            // Let go of the caller's closure before reporting done: it must not outlive parallelFor.
            body = nil

            pthread_mutex_lock(mutex)
            doneWorkers += 1
            if doneWorkers == threadCount - 1 { pthread_cond_signal(finished) }
            pthread_mutex_unlock(mutex)
        }
    }

    // MARK: Workspace

    /// Runs `body` with `count` floats of scratch memory that the pool keeps between calls, so
    /// large per-call buffers (attention's packed K/V) are not faulted in afresh every time. The
    /// buffer grows to the largest size asked for. A concurrent caller gets a temporary buffer.
    public func withWorkspace<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        guard workspaceBusy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            let temporary = TensorStorage(count: count)
            return try withExtendedLifetime(temporary) { try body(temporary.base) }
        }
        defer { workspaceBusy.store(false, ordering: .releasing) }
        if workspace == nil || workspace!.count < count { workspace = TensorStorage(count: count) }
        return try body(workspace!.base)
    }

    // MARK: The current pool

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    private static let processDefault = ThreadPool(threads: ProcessInfo.processInfo.activeProcessorCount)

    /// The pool kernels use on this thread: the one installed with `withCurrent`, or else a
    /// process-wide pool with one thread per core.
    public static var current: ThreadPool {
        if let raw = pthread_getspecific(key) {
            return Unmanaged<ThreadPool>.fromOpaque(raw).takeUnretainedValue()
        }
        return processDefault
    }

    /// Runs `body` with `self` as this thread's current pool (a rank thread installs its own).
    public func withCurrent<R>(_ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(Self.key)
        pthread_setspecific(Self.key, Unmanaged.passUnretained(self).toOpaque())
        defer { pthread_setspecific(Self.key, previous) }
        return try withExtendedLifetime(self) { try body() }
    }
}

private final class WorkerArgs {
    /// Unowned: the pool joins its workers in deinit, so it outlives them; a strong reference
    /// would keep every pool alive forever.
    unowned(unsafe) let pool: ThreadPool
    let index: Int
    init(pool: ThreadPool, index: Int) {
        self.pool = pool
        self.index = index
    }
}

/// Process-wide OpenBLAS settings.
public enum BLAS {
    /// OpenBLAS keeps one global thread count. The engine parallelises around BLAS calls itself,
    /// so BLAS runs single-threaded inside each pool thread.
    public static func useSingleThread() { openblas_set_num_threads(1) }

    /// Held while OpenBLAS runs multi-threaded. OpenBLAS's thread count is global, and its threaded
    /// GEMM sums in another order, so code that must give the same bits run to run in this process
    /// (tests of bit-exactness) takes it too.
    public static let multiThreadLock = NSLock()

    /// Runs `body` with OpenBLAS using `threads` threads for its own calls (benchmarks of raw cblas
    /// only), then back to one.
    public static func withThreads<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        multiThreadLock.lock()
        defer {
            useSingleThread()
            multiThreadLock.unlock()
        }
        openblas_set_num_threads(Int32(threads))
        return try body()
    }
}

extension BLAS {
    /// OpenBLAS's build and the kernel core it picked at run time, e.g. "OpenBLAS 0.3.21 … Haswell".
    public static var description: String {
        let config = String(cString: openblas_get_config())
        let core = String(cString: openblas_get_corename())
        return "\(config) (core \(core))"
    }

    /// The OpenBLAS core this CPU should use when OpenBLAS fell back to pre-AVX2 kernels on it: its
    /// DYNAMIC_ARCH does not recognise some virtual Xeons and picks Prescott (SSE3), which made GEMM
    /// 4.8× slower than SkylakeX on a 2-core one (docs/PERFORMANCE.md). nil when its choice is fine.
    public static var preferredCoreType: String? {
        let core = String(cString: openblas_get_corename()).lowercased()
        let fallbacks = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "coppermine", "northwood", "banias"]
        guard fallbacks.contains(core), let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(line.split(separator: " ").map(String.init))
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return "SkylakeX" }
        return flags.isSuperset(of: ["avx2", "fma"]) ? "Haswell" : nil
    }

    /// A one-line warning while OpenBLAS runs fallback kernels on a CPU that has better ones.
    public static var coreWarning: String? {
        preferredCoreType.map { core in
            "OpenBLAS runs its \(String(cString: openblas_get_corename())) kernels on a CPU it did not recognise; GEMM runs "
                + "several times slower than with OPENBLAS_CORETYPE=\(core)"
        }
    }
}
