import Dispatch
import Synchronization

/// Time spent in matrix products, by shape: what `bench train --profile` reports to show where a
/// training step's time goes (the products against everything else) and how efficient each
/// product shape is. Off unless `start()` was called; when off, a product pays one atomic load.
public enum GEMMProfile {
    /// One product shape (as `GEMM.multiply` was called) and its totals.
    public struct Entry: Sendable, Hashable {
        public let m: Int, n: Int, k: Int
        public let transposeA: Bool, transposeB: Bool
    }

    public struct Totals: Sendable {
        public var calls = 0
        public var seconds = 0.0
        /// Multiply-add FLOPs (2 per MAC).
        public var flops: Double = 0
    }

    private static let enabled = Atomic<Bool>(false)
    private static let table = Mutex<[Entry: Totals]>([:])

    /// Clears the totals and starts recording.
    public static func start() {
        table.withLock { $0 = [:] }
        enabled.store(true, ordering: .relaxed)
    }

    /// Stops recording and returns the totals per shape, slowest first.
    public static func stop() -> [(Entry, Totals)] {
        enabled.store(false, ordering: .relaxed)
        return table.withLock { $0 }.sorted { $0.value.seconds > $1.value.seconds }
    }

    /// Runs `body` (one product) and records its time when profiling is on.
    @inline(__always)
    static func record(m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool, _ body: () -> Void) {
        guard enabled.load(ordering: .relaxed) else { return body() }
        let started = DispatchTime.now().uptimeNanoseconds
        body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let entry = Entry(m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
        table.withLock { t in
            t[entry, default: Totals()].calls += 1
            t[entry, default: Totals()].seconds += seconds
            t[entry, default: Totals()].flops += 2 * Double(m) * Double(n) * Double(k)
        }
    }
}
