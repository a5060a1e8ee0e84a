import Foundation
import Glibc

/// The state dir's record of every file the daemon has taken: processed files (path, size, mtime,
/// epochs done) so a restart does not redo them, and bad files with their reason so they are not
/// retried in a loop. Append-only JSON lines, fsynced per entry; a torn last line (a crash while
/// appending) is ignored on load.
final class Ledger: @unchecked Sendable {
    struct Entry: Codable, Equatable {
        var path: String
        var size: Int64
        var mtime: Double
        /// "ok" or "bad".
        var status: String
        var epochs: Int
        var reason: String?
    }

    let url: URL
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    init(stateDirectory: URL) throws {
        url = stateDirectory.appendingPathComponent("ledger.jsonl")
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        if let data = try? Data(contentsOf: url) {
            for line in data.split(separator: UInt8(ascii: "\n")) {
                if let e = try? JSONDecoder().decode(Entry.self, from: Data(line)) { entries[e.path] = e }
            }
        }
    }

    /// The latest entry for `path`, if any.
    func entry(_ path: String) -> Entry? { lock.withLock { entries[path] } }

    var all: [Entry] { lock.withLock { Array(entries.values).sorted { $0.path < $1.path } } }

    /// True when `path` (with this size and mtime) is done or known bad.
    func isSettled(_ path: String, size: Int64, mtime: Double, epochs: Int) -> Bool {
        guard let e = entry(path), e.size == size, e.mtime == mtime else { return false }
        return e.status == "bad" || e.epochs >= epochs
    }

    func record(_ entry: Entry) throws {
        var data = try JSONEncoder().encode(entry)
        data.append(UInt8(ascii: "\n"))
        try lock.withLock {
            let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw ConfigError(description: "ledger \(url.path): open failed: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == data.count, fsync(fd) == 0 else {
                throw ConfigError(description: "ledger \(url.path): write failed: \(String(cString: strerror(errno)))")
            }
            entries[entry.path] = entry
        }
    }
}
