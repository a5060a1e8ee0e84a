import Foundation
import Glibc

/// Reads small text files (configs) with errors a user can act on: what the path is instead of
/// a file, or the system's reason in plain words.
package enum TextFile {
    package struct Failure: Error {
        /// Why, without the path (callers name the file their own way).
        package var reason: String
    }

    /// The UTF-8 contents of the regular file at `path`, at most `limit` bytes.
    package static func read(_ path: String, limit: Int) throws(Failure) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw Failure(reason: "cannot read: \(String(cString: strerror(errno)))") }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw Failure(reason: "is a directory, not a file")
        default: throw Failure(reason: "is not a regular file (a device, FIFO or socket)")
        }
        guard Int(info.st_size) <= limit else { throw Failure(reason: "is \(info.st_size) bytes, more than the \(limit) a config may have") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(reason: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n > 0 { count += n } else if n < 0, errno == EINTR { continue } else if n < 0 {
                throw Failure(reason: "cannot read: \(String(cString: strerror(errno)))")
            } else { break }
        }
        guard count <= limit else { throw Failure(reason: "has more than the \(limit) bytes a config may have") }
        guard let text = String(validating: bytes[..<count], as: UTF8.self) else { throw Failure(reason: "is not UTF-8 text") }
        return text
    }
}
