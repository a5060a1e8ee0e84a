import Dispatch
import Synchronization

/// Time spent in matrix products and convolutions, by shape: what `bench train --profile` reports
/// to show where a training step's time goes (the products against everything else) and how
/// efficient each shape is. Off unless `start()` was called; when off, a call pays one atomic load.
public enum GEMMProfile {
    /// One operation and shape, and its totals. A convolution is listed with the matrix product it
    /// equals (m output positions, n output channels, k = kernel² · input channels).
    public struct Entry: Sendable, Hashable {
        /// "sgemm NT" (the transposes of A and B), or "conv forward", "conv backward" (data and
        /// weights) with oneDNN's implementation name.
        public let operation: String
        public let m: Int, n: Int, k: Int
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

    /// Runs `body` (`multiplies` products of m×k by k×n) and records its time when profiling is on.
    @inline(__always)
    static func record(_ operation: @autoclosure () -> String, m: Int, n: Int, k: Int, multiplies: Int = 1, _ body: () -> Void) {
        guard enabled.load(ordering: .relaxed) else { return body() }
        let started = DispatchTime.now().uptimeNanoseconds
        body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let entry = Entry(operation: operation(), m: m, n: n, k: k)
        table.withLock { t in
            t[entry, default: Totals()].calls += 1
            t[entry, default: Totals()].seconds += seconds
            t[entry, default: Totals()].flops += 2 * Double(multiplies) * Double(m) * Double(n) * Double(k)
        }
    }
}
