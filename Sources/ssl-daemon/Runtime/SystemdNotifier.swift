import Foundation
import Glibc

/// Reports the daemon's state to systemd through the sd_notify datagram protocol, without linking libsystemd.
///
/// systemd hands a `Type=notify` service the address of its notification socket in `NOTIFY_SOCKET`; each
/// message is one datagram of newline-separated `KEY=VALUE` assignments. The socket is opened once and every
/// `send` is a single `sendto`, so the type holds no mutable state and may be shared between threads.
/// Errors are ignored: losing a status line must never take the daemon down, and if READY=1 or a
/// watchdog ping is lost systemd acts on the missing message itself.
final class SystemdNotifier: Sendable {
    private let descriptor: Int32
    private let address: sockaddr_un
    private let addressLength: socklen_t

    /// How often to call `watchdog()`, in seconds: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
    /// advises, so a ping survives one late tick. Nil when systemd runs no watchdog for this process
    /// (`WATCHDOG_USEC` unset or invalid, or `WATCHDOG_PID` names another process).
    let watchdogInterval: Double?

    /// Connects to the socket named by `NOTIFY_SOCKET`. Nil when the variable is unset or empty (not run by
    /// systemd, or not `Type=notify`), when it is neither an absolute path nor an abstract `@name`, when it
    /// does not fit in `sun_path`, or when no socket can be created.
    init?(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let target = environment["NOTIFY_SOCKET"], !target.isEmpty else { return nil }

        // A leading "@" names a socket in Linux's abstract namespace: sun_path starts with a NUL byte and
        // the name is the remaining bytes, not NUL-terminated, so the address length must count it exactly.
        let abstract = target.hasPrefix("@")
        guard abstract || target.hasPrefix("/") else { return nil }
        let pathBytes: [UInt8] = abstract ? [0] + Array(target.utf8.dropFirst()) : Array(target.utf8)

        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        // A filesystem path keeps its terminating NUL (sockaddr_un() is zeroed), as sd_notify does.
        let pathLength = abstract ? pathBytes.count : pathBytes.count + 1
        guard pathBytes.count > 1, pathLength <= capacity else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? MemoryLayout<sa_family_t>.size

        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return nil }

        self.descriptor = descriptor
        self.address = address
        self.addressLength = socklen_t(pathOffset + pathLength)
        self.watchdogInterval = Self.watchdogInterval(environment)
    }

    deinit {
        close(descriptor)
    }

    /// Sends `message` (one or more newline-separated `KEY=VALUE` lines) as one datagram. Failures are
    /// ignored; MSG_NOSIGNAL keeps a vanished peer from raising SIGPIPE. Like libsystemd's sd_notify the
    /// socket is blocking, so a call waits only while systemd's receive queue is full.
    func send(_ message: String) {
        let bytes = Array(message.utf8)
        guard !bytes.isEmpty else { return }
        withUnsafePointer(to: address) { unixAddress in
            unixAddress.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bytes.withUnsafeBytes { buffer in
                    while sendto(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL),
                                 socketAddress, addressLength) < 0, errno == EINTR {}
                }
            }
        }
    }

    /// Startup is complete: systemd moves the unit to "active" and lets units ordered after it start.
    func ready() { send("READY=1") }

    /// Free-form one-line status shown by `systemctl status`.
    func status(_ text: String) { send("STATUS=\(text)") }

    /// Shutdown has begun, so systemd shows the unit as "deactivating" rather than hung.
    func stopping() { send("STOPPING=1") }

    /// Watchdog keep-alive; must arrive within `WatchdogSec=` or systemd kills and restarts the service.
    func watchdog() { send("WATCHDOG=1") }

    /// Half of `WATCHDOG_USEC` in seconds when the watchdog applies to this process, else nil.
    private static func watchdogInterval(_ environment: [String: String]) -> Double? {
        guard let usecText = environment["WATCHDOG_USEC"], let usec = UInt64(usecText), usec > 0 else { return nil }
        if let pidText = environment["WATCHDOG_PID"], !pidText.isEmpty {
            guard let pid = pid_t(pidText), pid == getpid() else { return nil }
        }
        return Double(usec) / 1_000_000 / 2
    }
}
