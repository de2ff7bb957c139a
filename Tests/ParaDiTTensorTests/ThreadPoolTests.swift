import ParaDiTTensor
import Synchronization
import Testing

@Suite("Thread pool")
struct ThreadPoolTests {
    @Test("parallelFor runs every item exactly once with worker ids in range", arguments: [1, 2, 4])
    func coversItems(threads: Int) {
        let pool = ThreadPool(threads: threads)
        for count in [0, 1, 3, 100, 1000] {
            let hits = Tensor(zeros: [max(count, 1)])
            let badWorker = Atomic<Bool>(false)
            pool.parallelFor(count) { i, w in
                hits.data[i] += 1
                if w < 0 || w >= threads { badWorker.store(true, ordering: .relaxed) }
            }
            #expect(hits.scalars.prefix(count).allSatisfy { $0 == 1 }, "count \(count)")
            let sawBadWorker = badWorker.load(ordering: .relaxed)
            #expect(!sawBadWorker)
        }
    }

    @Test("a nested parallelFor runs serially instead of deadlocking")
    func nested() {
        let pool = ThreadPool(threads: 2)
        let hits = Tensor(zeros: [64])
        pool.parallelFor(8) { i, _ in pool.parallelFor(8) { j, _ in hits.data[i * 8 + j] += 1 } }
        #expect(hits.scalars.allSatisfy { $0 == 1 })
    }

    @Test("parallelChunks partitions the range")
    func chunks() {
        let pool = ThreadPool(threads: 3)
        let hits = Tensor(zeros: [1001])
        pool.parallelChunks(1001, minChunk: 10) { r, _ in for i in r { hits.data[i] += 1 } }
        #expect(hits.scalars.allSatisfy { $0 == 1 })
    }

    @Test("withCurrent installs the pool for this thread only")
    func current() {
        let pool = ThreadPool(threads: 3)
        #expect(ThreadPool.current !== pool)
        pool.withCurrent { #expect(ThreadPool.current === pool) }
        #expect(ThreadPool.current !== pool)
    }
}
