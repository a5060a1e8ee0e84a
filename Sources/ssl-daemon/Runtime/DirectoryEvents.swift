import Glibc

/// Wakes the directory scanner when something changes in a watched directory (inotify), so new
/// files are seen at once; polling at `sources.poll_interval` remains the fallback (and the only
/// mechanism if inotify is unavailable, e.g. its watch limit is reached). `interrupt()` ends a
/// wait from another thread (shutdown).
final class DirectoryEvents: Sendable {
    /// The inotify descriptor (inotify_init1), or -1.
    private let fd: Int32
    /// A pipe (pipe(2), non-blocking, close-on-exec) whose read end `interrupt()` makes
    /// readable for good; -1 when it could not be made.
    private let wake: Int32
    private let wakeWriter: Int32

    init() {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) == 0 {
            for end in ends {
                _ = fcntl(end, F_SETFD, FD_CLOEXEC)
                _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            }
        }
        wake = ends[0]
        wakeWriter = ends[1]
    }

    deinit {
        for d in [fd, wake, wakeWriter] where d >= 0 { close(d) }
    }

    /// Watches `directory` for files created, finished or moved in (inotify_add_watch; adding
    /// the same directory again is a no-op in the kernel).
    func watch(_ directory: String) {
        guard fd >= 0 else { return }
        let mask = UInt32(IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE_SELF)
        _ = inotify_add_watch(fd, directory, mask)
    }

    /// Waits up to `seconds` (poll(2)) for an event or an interrupt; true when something changed.
    /// Drains pending events. After `interrupt()`, every wait returns at once.
    @discardableResult
    func wait(seconds: Double) -> Bool {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
        let ready = poll(&fds, nfds_t(fds.count), Int32(max(0, min(seconds, 60)) * 1000))
        guard ready > 0, fds[0].revents & Int16(POLLIN) != 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 8192)
        while read(fd, &buffer, buffer.count) > 0 {}
        return true
    }

    /// Ends the current and every later `wait` at once (one byte into the pipe, never read, so it
    /// stays readable).
    func interrupt() {
        guard wakeWriter >= 0 else { return }
        var byte: UInt8 = 1
        _ = write(wakeWriter, &byte, 1)
    }
}
