import Foundation
import Glibc
import Synchronization

/// The uid and gid of `nobody` on Debian, for permission tests.
public let unprivilegedID: UInt32 = 65_534

/// Runs `body` on a new thread whose file-system identity is `uid`/`gid` (setfsgid(2) and
/// setfsuid(2)), waits up to `seconds` for it and returns its result.
///
/// Why: tests run as root, and root reads a mode-000 file anyway, so no permission error can
/// happen. When a thread's fsuid leaves 0 the kernel drops CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
/// and the other file capabilities from its effective set, so open(2) and stat(2) on that thread
/// get real EACCES errors. Only that thread changes: the fsuid is per thread on Linux and glibc
/// does not broadcast setfsuid to the other threads (as it does setuid). When not root, `body`
/// runs with the process's own identity, whose permission checks already apply.
///
/// `body` must not start threads that outlive it: a thread it creates inherits the identity, and a
/// Dispatch worker spawned that way would carry it into other tests. (FFmpeg's decoder threads are
/// joined when their codec context is freed.)
///
/// Throws when the identity could not be switched or `body` did not return in time.
public func withFilesystemIdentity<T: Sendable>(
    uid: UInt32 = unprivilegedID, gid: UInt32 = unprivilegedID, seconds: Double = 60,
    _ body: @escaping @Sendable () -> T
) throws -> T {
    let outcome = ThreadOutcome<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        defer { done.signal() }
        let root = geteuid() == 0
        if root {
            _ = setFilesystemID("setfsgid", gid)
            _ = setFilesystemID("setfsuid", uid)
            guard currentFilesystemUID() == uid else {
                outcome.switched.withLock { $0 = false }
                return
            }
        }
        let value = body()
        if root {
            _ = setFilesystemID("setfsuid", 0)
            _ = setFilesystemID("setfsgid", 0)
        }
        outcome.value.withLock { $0 = value }
    }
    thread.start()
    guard done.wait(timeout: .now() + seconds) == .success else {
        throw TestFailure("the body run as uid \(uid) did not return within \(seconds) s")
    }
    guard outcome.switched.withLock({ $0 }), let value = outcome.value.withLock({ $0 }) else {
        throw TestFailure("could not switch this thread's file-system uid to \(uid)")
    }
    return value
}

/// The calling thread's file-system uid (setfsuid(-1) reads it without changing it).
public func currentFilesystemUID() -> UInt32 { UInt32(bitPattern: setFilesystemID("setfsuid", UInt32.max)) }

/// Calls glibc's setfsuid or setfsgid, which Swift's Glibc module does not import
/// (<sys/fsuid.h>), through dlsym. Returns the previous id, or -1 if the symbol is missing.
private func setFilesystemID(_ function: String, _ id: UInt32) -> Int32 {
    guard let handle = dlopen(nil, RTLD_NOW) else { return -1 }
    defer { dlclose(handle) }
    guard let address = dlsym(handle, function) else { return -1 }
    return unsafeBitCast(address, to: (@convention(c) (UInt32) -> Int32).self)(id)
}

/// What the helper thread of `withFilesystemIdentity` hands back.
private final class ThreadOutcome<T: Sendable>: Sendable {
    let value = Mutex<T?>(nil)
    let switched = Mutex(true)
}
