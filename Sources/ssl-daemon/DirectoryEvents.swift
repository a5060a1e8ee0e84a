import Glibc

/// Wakes the directory scanner when something changes in a watched directory (inotify), so new
/// files are seen at once; polling at `sources.poll_interval` remains the fallback (and the only
/// mechanism if inotify is unavailable, e.g. its watch limit is reached).
final class DirectoryEvents {
    private let fd: Int32
    private var watched: Set<String> = []

    init() {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
    }

    deinit { if fd >= 0 { close(fd) } }

    var isAvailable: Bool { fd >= 0 }

    /// Watches `directory` (idempotent) for files created, finished or moved in.
    func watch(_ directory: String) {
        guard fd >= 0, !watched.contains(directory) else { return }
        let mask = UInt32(IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE_SELF)
        if inotify_add_watch(fd, directory, mask) >= 0 { watched.insert(directory) }
    }

    /// Waits up to `seconds` for an event; true when something changed. Drains pending events.
    func wait(seconds: Double) -> Bool {
        guard fd >= 0 else {
            usleep(UInt32(max(0, min(seconds, 60)) * 1_000_000))
            return false
        }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, Int32(max(0, min(seconds, 60)) * 1000))
        guard ready > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 8192)
        while read(fd, &buffer, buffer.count) > 0 {}
        return true
    }
}
