import Foundation
import Glibc

/// Reads small files (configs, the ledger) with errors a user can act on: what the path is
/// instead of a file, or the system's reason in plain words. POSIX calls, because Foundation's
/// `Data(contentsOf:)` leaks a 4 KiB buffer on every empty file (found by the ledger fuzz target).
package enum TextFile {
    package struct Failure: Error {
        /// Why, without the path (callers name the file their own way).
        package var reason: String
        /// The path does not exist.
        package var missing = false
    }

    /// The bytes of the regular file at `path`, at most `limit` of them.
    package static func bytes(_ path: String, limit: Int) throws(Failure) -> Data {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw Failure(reason: "cannot read: \(String(cString: strerror(errno)))", missing: errno == ENOENT)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw Failure(reason: "is a directory, not a file")
        default: throw Failure(reason: "is not a regular file (a device, FIFO or socket)")
        }
        guard Int(info.st_size) <= limit else { throw Failure(reason: "is \(info.st_size) bytes, more than the \(limit) it may have") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(reason: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                data.append(contentsOf: chunk[..<n])
                guard data.count <= limit else { throw Failure(reason: "has more than the \(limit) bytes it may have") }
            } else if n < 0, errno == EINTR {
                continue
            } else if n < 0 {
                throw Failure(reason: "cannot read: \(String(cString: strerror(errno)))")
            } else {
                return data
            }
        }
    }

    /// The UTF-8 contents of the regular file at `path`, at most `limit` bytes.
    package static func read(_ path: String, limit: Int) throws(Failure) -> String {
        let data = try bytes(path, limit: limit)
        guard let text = String(validating: data, as: UTF8.self) else { throw Failure(reason: "is not UTF-8 text") }
        return text
    }
}
