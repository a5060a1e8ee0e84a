import Foundation
import Glibc

/// The daemon's state directory, created if missing and held with an exclusive `flock` on its
/// `lock` file for the life of this value, so two daemons never share one (they would interleave
/// checkpoints, prune each other's and both append to the ledger). The lock file holds the
/// holder's PID; the kernel drops the lock when the process ends, however it ends.
package final class StateDirectory: @unchecked Sendable {
    package struct Failure: Error, CustomStringConvertible {
        package var description: String
    }

    package let url: URL
    private let fd: Int32

    /// Creates `path` (and its parents) when missing and takes the lock.
    package init(path: String) throws(Failure) {
        url = URL(fileURLWithPath: path, isDirectory: true)
        try Self.makeDirectories(url.path, named: path)
        guard access(url.path, W_OK | X_OK) == 0 else {
            throw Failure(description: "state dir \(path): not writable: \(String(cString: strerror(errno)))")
        }
        let lockPath = url.appendingPathComponent("lock").path
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "state dir \(path): cannot open its lock file \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            var bytes = [UInt8](repeating: 0, count: 32)
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
            close(fd)
            guard code == EWOULDBLOCK else {
                throw Failure(description: "state dir \(path): cannot lock \(lockPath): \(String(cString: strerror(code)))")
            }
            let holder = n > 0 ? String(decoding: bytes[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw Failure(description: "state dir \(path) is in use by another ssl-daemon (pid \(holder.isEmpty ? "?" : holder)); stop it or choose another --state-dir")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        self.fd = fd
    }

    deinit { close(fd) }

    /// `mkdir -p` with messages that say what is in the way.
    private static func makeDirectories(_ path: String, named name: String) throws(Failure) {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw Failure(description: "state dir \(name) exists and is not a directory") }
            return
        }
        guard errno == ENOENT else { throw Failure(description: "state dir \(name): \(String(cString: strerror(errno)))") }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path { try makeDirectories(parent, named: name) }
        if mkdir(path, 0o755) != 0, errno != EEXIST {
            throw Failure(description: "state dir \(name): cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }
}
