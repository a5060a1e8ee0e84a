import Foundation
import Synchronization

/// State behind one lock, with waiting until a condition over it holds: the runtime's only
/// condition variable, so no stage hand-writes its own locking.
///
/// Every read and write of the state happens inside a closure given to this type, under its lock;
/// that is what makes it safe to share (hence `@unchecked Sendable`). Do not let references into
/// the state escape the closures.
final class Monitor<State>: @unchecked Sendable {
    private let condition = NSCondition()
    private var state: State

    init(_ state: State) { self.state = state }

    /// Runs `body` under the lock.
    func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        condition.lock()
        defer { condition.unlock() }
        return try body(&state)
    }

    /// Runs `body` under the lock and wakes every waiter, which re-checks its condition.
    func update<R>(_ body: (inout State) throws -> R) rethrows -> R {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&state)
    }

    /// Waits until `ready` holds (or `deadline` passes), then runs `body` under the same lock
    /// hold, so nothing changes between the check and the action. `ready` is re-checked after
    /// every `update`; `body` decides what a timeout means (it sees the state either way).
    func wait<R>(until deadline: Date? = nil, for ready: (State) -> Bool, then body: (inout State) throws -> R) rethrows -> R {
        condition.lock()
        defer { condition.unlock() }
        while !ready(state) {
            if let deadline {
                if !condition.wait(until: deadline) { break }
            } else {
                condition.wait()
            }
        }
        return try body(&state)
    }

    /// Wakes every waiter without changing the state (a flag outside it changed, e.g. a stop).
    func wakeAll() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}

/// A value behind a lock that closures can capture (a `Mutex` cannot be captured by escaping
/// closures: it is not copyable).
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    var value: Value {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }

    /// Reads and changes the value in one lock hold.
    func mutate<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
