import Dispatch
import Synchronization

/// How many threads our own element-wise loops may use (BLAS has its own count, `GEMM.setThreads`).
/// Work is split into fixed contiguous ranges, so results never depend on the thread count.
public enum Parallel {
    private static let workers = Atomic<Int>(1)

    /// Sets the worker count for im2col, col2im and normalisation loops (at least 1).
    public static func setWorkers(_ n: Int) { workers.store(max(1, n), ordering: .relaxed) }
    public static var workerCount: Int { workers.load(ordering: .relaxed) }

    /// Calls `body(range)` for contiguous ranges covering 0..<count, in parallel when it pays.
    static func forEachRange(_ count: Int, minimumPerWorker: Int = 1, _ body: (Range<Int>) -> Void) {
        let w = min(workerCount, max(1, count / max(1, minimumPerWorker)))
        if w <= 1 {
            body(0..<count)
            return
        }
        // The bodies write through raw pointers into disjoint ranges and concurrentPerform
        // returns only when all are done, so sharing the non-Sendable closure is safe.
        nonisolated(unsafe) let shared = body
        DispatchQueue.concurrentPerform(iterations: w) { i in
            shared((count * i / w)..<(count * (i + 1) / w))
        }
    }
}
