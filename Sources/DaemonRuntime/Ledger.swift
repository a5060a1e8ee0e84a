import Foundation
import Glibc

/// The state dir's record of every file the daemon has taken: files learned from (path, size,
/// mtime, epochs done) so a restart does not redo them, and files whose content is bad, with their
/// reason, so they are not retried in a loop. Append-only JSON lines, fsynced per append; a torn
/// or garbled line (a crash while appending, a damaged disk) is skipped on load.
///
/// An "ok" entry names the checkpoint step that covers it: it is only appended after a checkpoint
/// of that step is durable, and on resume from step S every entry of a later step is ignored (its
/// learning was lost with the newer checkpoint), so a file is never marked done before what was
/// learned from it is on disk. Compaction rewrites the file atomically, keeping per path the entries
/// a retained checkpoint may still need.
package final class Ledger: @unchecked Sendable {
    /// A file's outcome: learned from (`ok`, with its epochs done) or not readable as media (`bad`).
    /// Written as "ok" / "bad"; a line with any other status does not decode and is skipped.
    package enum Status: String, Codable, Sendable {
        case ok, bad
    }

    package struct Entry: Codable, Equatable, Sendable {
        package var path: String
        package var size: Int64
        package var mtime: Double
        package var status: Status
        package var epochs: Int
        package var reason: String?
        /// The checkpoint step whose durability this entry records (nil for bad files: nothing
        /// was learned from them).
        package var step: Int?

        package init(path: String, size: Int64, mtime: Double, status: Status, epochs: Int, reason: String? = nil, step: Int? = nil) {
            self.path = path
            self.size = size
            self.mtime = mtime
            self.status = status
            self.epochs = epochs
            self.reason = reason
            self.step = step
        }
    }

    package struct Failure: Error, CustomStringConvertible {
        package var description: String
    }

    package let url: URL
    private let lock = NSLock()
    /// Every loaded or appended entry per path, oldest first.
    private var history: [String: [Entry]] = [:]
    /// The newest trusted entry per path.
    private var entries: [String: Entry] = [:]
    private var trustedStep = Int.max
    private var lines = 0

    /// Loads `ledger.jsonl` from `stateDirectory` (which must exist).
    package init(stateDirectory: URL) throws(Failure) {
        url = stateDirectory.appendingPathComponent("ledger.jsonl")
        let data: Data
        do { data = try TextFile.bytes(url.path, limit: 1 << 34) } catch {
            if error.missing { return }
            throw Failure(description: "ledger \(url.path): \(error.reason)")
        }
        let parsed = Self.parse(data)
        for e in parsed.entries { history[e.path, default: []].append(e) }
        lines = parsed.entries.count + parsed.skipped
        recompute()
    }

    /// The entries of a ledger file's bytes, in order, and how many lines were not entries.
    package static func parse(_ data: Data) -> (entries: [Entry], skipped: Int) {
        var out: [Entry] = [], skipped = 0
        let decoder = JSONDecoder()
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            guard let e = try? decoder.decode(Entry.self, from: Data(line)), !e.path.isEmpty, e.epochs >= 0,
                e.mtime.isFinite, e.step.map({ $0 >= 0 }) ?? true
            else {
                skipped += 1
                continue
            }
            out.append(e)
        }
        return (out, skipped)
    }

    /// Ignores entries recorded for checkpoints after `step` (the one training resumed from; nil
    /// when training starts fresh, which trusts no "ok" entry).
    package func trust(upToStep step: Int?) {
        lock.withLock {
            trustedStep = step ?? -1
            recompute()
        }
    }

    private func recompute() {
        entries = [:]
        for (path, list) in history {
            if let e = list.last(where: isTrusted) { entries[path] = e }
        }
    }

    /// Bad entries always count; an "ok" entry only up to the resume step (one without a step, from
    /// a ledger written before steps were recorded, counts as step 0).
    private func isTrusted(_ e: Entry) -> Bool { e.status == .bad || Self.step(of: e) <= trustedStep }

    /// The step an entry is ordered by: bad entries and step-less ones are step 0.
    private static func step(of e: Entry) -> Int { e.status == .bad ? 0 : e.step ?? 0 }

    /// Epochs finished since the last durable checkpoint: visible to `entry` at once, written to
    /// the file by `commit` once a checkpoint covers them.
    private var pending: [String: Entry] = [:]

    /// The latest entry for `path` (a pending one first), if any.
    package func entry(_ path: String) -> Entry? { lock.withLock { pending[path] ?? entries[path] } }

    /// Records a finished epoch in memory only, until a checkpoint covers it.
    package func stage(_ entry: Entry) { lock.withLock { pending[entry.path] = entry } }

    /// What a checkpoint taken now covers: the pending entries.
    package var staged: [Entry] { lock.withLock { pending.values.sorted { $0.path < $1.path } } }

    /// Appends `covered` (a `staged` snapshot) with the step of the durable checkpoint that covers
    /// it, and drops each from the pending set unless a newer epoch of that path replaced it.
    package func commit(_ covered: [Entry], step: Int) throws(Failure) {
        let stamped = covered.map { e -> Entry in
            var e = e
            e.step = step
            return e
        }
        try record(stamped)
        lock.withLock {
            for e in covered where pending[e.path] == e { pending[e.path] = nil }
        }
    }

    package var all: [Entry] { lock.withLock { Array(entries.values).sorted { $0.path < $1.path } } }

    /// Lines in the file now (entries and skipped lines).
    package var lineCount: Int { lock.withLock { lines } }

    /// True when `path` (with this size and mtime) is done or known bad.
    package func isSettled(_ path: String, size: Int64, mtime: Double, epochs: Int) -> Bool {
        guard let e = entry(path), e.size == size, e.mtime == mtime else { return false }
        return e.status == .bad || e.epochs >= epochs
    }

    /// Epochs of `path` already done with this size and mtime (0 when changed or unknown).
    package func epochsDone(_ path: String, size: Int64, mtime: Double) -> Int {
        guard let e = entry(path), e.size == size, e.mtime == mtime, e.status == .ok else { return 0 }
        return e.epochs
    }

    /// Appends `batch` with one fsync.
    package func record(_ batch: [Entry]) throws(Failure) {
        guard !batch.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        for e in batch {
            guard let line = try? encoder.encode(e) else { continue }
            data.append(line)
            data.append(UInt8(ascii: "\n"))
        }
        lock.lock()
        defer { lock.unlock() }
        do {
            let fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw Failure(description: "ledger \(url.path): cannot open: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            // A failed append (a full disk) is cut back off, so the next one starts on a fresh line.
            let end = lseek(fd, 0, SEEK_END)
            do throws(Failure) { try Self.writeAll(fd, data, path: url.path) } catch {
                if end >= 0 { _ = ftruncate(fd, end) }
                throw error
            }
            for e in batch {
                history[e.path, default: []].append(e)
                if isTrusted(e) { entries[e.path] = e }
            }
            lines += batch.count
        }
    }

    package func record(_ entry: Entry) throws(Failure) { try record([entry]) }

    /// Rewrites the file when it has grown past twice what it needs: per path, the newest entry,
    /// every entry of step `oldestRetainedStep` or later, and the newest before it (what a fallback
    /// to the oldest retained checkpoint would trust). Atomic: temporary file, fsync, rename.
    /// Returns whether it rewrote.
    @discardableResult
    package func compact(oldestRetainedStep: Int) throws(Failure) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        do {
            guard lines > 2 * history.count + 1024 else { return false }
            var kept: [String: [Entry]] = [:]
            for (path, list) in history {
                // In their original order: which entry is the newest trusted one must not change.
                let before = list.lastIndex { Self.step(of: $0) < oldestRetainedStep }
                kept[path] = list.indices.filter { $0 == before || Self.step(of: list[$0]) >= oldestRetainedStep }.map { list[$0] }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var data = Data()
            var count = 0
            for path in kept.keys.sorted() {
                for e in kept[path]! {
                    guard let line = try? encoder.encode(e) else { continue }
                    data.append(line)
                    data.append(UInt8(ascii: "\n"))
                    count += 1
                }
            }
            let temp = url.deletingLastPathComponent().appendingPathComponent(".ledger.jsonl.\(getpid()).tmp")
            let fd = open(temp.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw Failure(description: "ledger \(temp.path): cannot open: \(String(cString: strerror(errno)))") }
            do throws(Failure) {
                try Self.writeAll(fd, data, path: temp.path)
                close(fd)
            } catch {
                close(fd)
                unlink(temp.path)
                throw error
            }
            guard rename(temp.path, url.path) == 0 else {
                let message = String(cString: strerror(errno))
                unlink(temp.path)
                throw Failure(description: "ledger \(url.path): cannot replace: \(message)")
            }
            let dir = open(url.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dir >= 0 {
                fsync(dir)
                close(dir)
            }
            history = kept
            lines = count
            return true
        }
    }

    private static func writeAll(_ fd: Int32, _ data: Data, path: String) throws(Failure) {
        let failure: Int32 = data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 { offset += n } else if n < 0, errno == EINTR { continue } else { return n == 0 ? EIO : errno }
            }
            return fsync(fd) == 0 ? 0 : errno
        }
        if failure != 0 { throw Failure(description: "ledger \(path): cannot write: \(String(cString: strerror(failure)))") }
    }
}
