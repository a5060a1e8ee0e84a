/// A bounded hand-off between a thread that must never wait (a live stream's reader) and one that
/// consumes (its pairing stage): when `capacity` elements that `counts` are queued, pushing another
/// one drops the oldest of them, and the drop is counted. Elements that do not count (audio, which
/// is small and whose gaps would break log-mel windows) are always queued.
final class DropOldestQueue<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var head = 0
        var counted = 0
        var closed = false
        var dropped = 0
    }
    private let monitor = Monitor(State())
    let capacity: Int
    private let counts: @Sendable (Element) -> Bool

    init(capacity: Int, counts: @escaping @Sendable (Element) -> Bool = { _ in true }) {
        precondition(capacity >= 1)
        self.capacity = capacity
        self.counts = counts
    }

    /// Queues `element`; returns how many elements it pushed out (0 or 1).
    @discardableResult
    func push(_ element: Element) -> Int {
        monitor.update { s in
            var droppedNow = 0
            if counts(element), s.counted >= capacity, let oldest = s.items[s.head...].firstIndex(where: counts) {
                s.items.remove(at: oldest)
                s.counted -= 1
                s.dropped += 1
                droppedNow = 1
            }
            if counts(element) { s.counted += 1 }
            s.items.append(element)
            return droppedNow
        }
    }

    /// The oldest element, waiting for one; nil once the queue is closed and empty.
    func pop() -> Element? {
        monitor.wait(for: { $0.head < $0.items.count || $0.closed }) { s in
            guard s.head < s.items.count else { return nil }
            let element = s.items[s.head]
            s.head += 1
            if counts(element) { s.counted -= 1 }
            // Compact now and then instead of shifting on every pop.
            if s.head > 64 && s.head * 2 > s.items.count {
                s.items.removeFirst(s.head)
                s.head = 0
            }
            return element
        }
    }

    /// No more pushes: `pop` drains what is queued, then returns nil.
    func close() { monitor.update { $0.closed = true } }

    /// Elements dropped since the queue was made.
    var dropped: Int { monitor.withLock { $0.dropped } }
}
