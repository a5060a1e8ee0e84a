public import Foundation
import Glibc

/// Why a checkpoint could not be written or read: the file involved, and either the system call
/// that failed with its errno text, or what is wrong with the file's contents.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// `operation` (e.g. "open", "write", "fsync", "rename") on `path` failed with `message`.
    case io(path: String, operation: String, message: String)
    /// `path` is not a usable checkpoint, for `reason`.
    case invalid(path: String, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let operation, let message): "checkpoint: \(operation) \(path): \(message)"
        case .invalid(let path, let reason): "checkpoint: \(path) is not a valid checkpoint: \(reason)"
        }
    }
}

/// A directory of numbered checkpoints, `ckpt-<step, 12 digits>.safetensors`, written so that a
/// crash or power loss at any moment leaves either the previous set of checkpoints or the previous
/// set plus the complete new one — never a partial file under a checkpoint name.
///
/// A valid checkpoint parses as safetensors and its metadata holds `format_version` and a `step`
/// equal to the step in its file name. Readers skip anything else in the directory, including the
/// `.ckpt-*.tmp` files of writers in progress (or of writers that crashed).
public struct CheckpointStore: Sendable {
    public let directory: URL
    /// How many checkpoints `write` leaves behind (at least 1).
    public let keep: Int

    /// Checkpoints that pruning also spares: the newest one whose metadata satisfies this is kept
    /// even when `keep` newer ones exist (e.g. the newest that carries the replay buffer).
    public let retains: (@Sendable ([String: String]) -> Bool)?

    /// `directory` need not exist yet; `write` creates it.
    public init(directory: URL, keep: Int, retains: (@Sendable ([String: String]) -> Bool)? = nil) {
        precondition(keep >= 1, "CheckpointStore: keep must be at least 1, got \(keep)")
        self.directory = directory
        self.keep = keep
        self.retains = retains
    }

    /// The URL a checkpoint for `step` has in this store.
    public func url(forStep step: Int) -> URL {
        directory.appendingPathComponent(Self.fileName(step: step))
    }

    /// Durably writes `file` as the checkpoint for `step` (replacing any checkpoint of that step)
    /// and returns its URL.
    ///
    /// Order: bytes go to a temporary file in the same directory, are fsynced, the file is renamed
    /// to its checkpoint name, and the directory is fsynced. Only then are older checkpoints deleted
    /// (oldest step first, never the one just written) until at most `keep` remain, and temporary
    /// files of writers that no longer run are removed. That cleanup is best-effort: what it cannot
    /// delete is retried on the next write, and it never makes a durable write fail.
    ///
    /// `file.metadata` must hold `format_version` and `step` == `step`, or nothing is written: a
    /// checkpoint that readers would reject is a bug in the caller. If a call fails before the
    /// rename, the temporary file is removed and the directory is as before; if the final directory
    /// fsync fails, the new checkpoint is in place but may not survive a power loss.
    @discardableResult
    public func write(_ file: SafeTensors, step: Int) throws(CheckpointError) -> URL {
        try write(metadata: file.metadata, tensors: file.streams, step: step)
    }

    /// `write(_:step:)` for tensors whose bytes are produced while the file is written: the file
    /// goes to disk in chunks and is never whole in memory.
    @discardableResult
    public func write(metadata: [String: String], tensors: [TensorStream], step: Int) throws(CheckpointError) -> URL {
        precondition(step >= 0, "CheckpointStore: step must be non-negative, got \(step)")
        let final = url(forStep: step)
        if let reason = Self.problem(with: metadata, nameStep: step) {
            throw .invalid(path: final.path, reason: "refusing to write: \(reason)")
        }
        try Self.makeDirectories(directory.path)

        let pid = getpid()
        // Not ending in .safetensors, so no reader ever mistakes a partial file for a checkpoint;
        // the pid tells later writers whether its owner may still be running.
        let temp = directory.appendingPathComponent(
            ".ckpt-\(step)-\(pid)-\(String(UInt64.random(in: .min ... .max), radix: 16)).tmp")
        do throws(CheckpointError) {
            try Self.writeSynced(header: SafeTensors.header(for: tensors, metadata: metadata), tensors: tensors, to: temp.path)
            try Self.check(rename(temp.path, final.path), final.path, "rename \(temp.lastPathComponent) to")
        } catch {
            unlink(temp.path)
            throw error
        }
        // The rename is only durable once the directory entry is on disk; pruning before that
        // could leave a crash with neither the old checkpoints nor the new one.
        try Self.syncDirectory(directory.path)

        pruneCheckpoints(keeping: final.lastPathComponent)
        removeStaleTemporaries(ownPid: pid)
        return final
    }

    /// The `ckpt-<step>.safetensors` files in the directory, by step ascending; nothing else in the
    /// directory (temporary files included) is listed. Empty if the directory does not exist.
    public func checkpoints() -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name in Self.step(fromName: name).map { (step: $0, name: name) } }
            .sorted { ($0.step, $0.name) < ($1.step, $1.name) }
            .map { (step: $0.step, url: directory.appendingPathComponent($0.name)) }
    }

    /// The newest checkpoint that validates, trying newest to oldest. Each rejected one is passed to
    /// `report` as a message naming the file and the reason. Nil when none validates.
    public func newestValid(report: (String) -> Void = { _ in }) -> (url: URL, file: SafeTensors)? {
        for candidate in checkpoints().reversed() {
            switch Self.validated(candidate.url, nameStep: candidate.step) {
            case .success(let file): return (candidate.url, file)
            case .failure(.invalid(_, let reason)): report("skipping checkpoint \(candidate.url.path): \(reason)")
            case .failure(let error): report("skipping checkpoint \(candidate.url.path): \(error)")
            }
        }
        return nil
    }

    /// Reads and validates one checkpoint file. A file named `ckpt-<step>.safetensors` must carry
    /// that step; under any other name (a copied or exported checkpoint) `step` must still be present
    /// and a non-negative integer.
    public static func load(_ url: URL) throws(CheckpointError) -> SafeTensors {
        try validated(url, nameStep: step(fromName: url.lastPathComponent)).get()
    }

    /// The checkpoint files `path` designates, the one to try first first: a regular file alone;
    /// for a directory, the checkpoints of its `checkpoints/` subdirectory (a daemon's state
    /// directory), else its own, newest first. Unvalidated; empty when there are none.
    public static func candidates(_ path: URL) -> [URL] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path.path, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue else { return [path] }
        let nested = CheckpointStore(directory: path.appendingPathComponent("checkpoints"), keep: 1).checkpoints()
        let own = nested.isEmpty ? CheckpointStore(directory: path, keep: 1).checkpoints() : nested
        return own.reversed().map(\.url)
    }

    /// The checkpoint file that `path` designates: a regular file is returned as is (unvalidated, so
    /// `load` can say what is wrong with it); for a directory, the newest valid checkpoint in its
    /// `checkpoints/` subdirectory (a daemon's state directory), else in the directory itself.
    /// Rejected checkpoints are passed to `report` as in `newestValid`. Nil when nothing is found.
    public static func resolve(_ path: URL, report: (String) -> Void = { _ in }) -> URL? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path.path, isDirectory: &isDirectory) else { return nil }
        guard isDirectory.boolValue else { return path }
        let nested = path.appendingPathComponent("checkpoints")
        if FileManager.default.fileExists(atPath: nested.path, isDirectory: &isDirectory), isDirectory.boolValue,
            let found = CheckpointStore(directory: nested, keep: 1).newestValid(report: report)
        {
            return found.url
        }
        return CheckpointStore(directory: path, keep: 1).newestValid(report: report)?.url
    }

    // MARK: - Names and validation

    private static let prefix = "ckpt-"
    private static let suffix = ".safetensors"
    private static let tempPrefix = ".ckpt-"
    private static let tempSuffix = ".tmp"

    private static func fileName(step: Int) -> String {
        let digits = String(step)
        return prefix + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + suffix
    }

    /// The step of a checkpoint file name; nil for any other name. Steps past 12 digits are longer.
    private static func step(fromName name: String) -> Int? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }

    /// What makes `metadata` unacceptable for a checkpoint of `nameStep` (any step when nil).
    private static func problem(with metadata: [String: String], nameStep: Int?) -> String? {
        guard metadata["format_version"] != nil else { return "metadata has no format_version" }
        guard let text = metadata["step"] else { return "metadata has no step" }
        guard let step = Int(text), step >= 0 else { return "metadata step \"\(text)\" is not a non-negative integer" }
        if let nameStep, step != nameStep { return "metadata step \(step) differs from the file name's step \(nameStep)" }
        return nil
    }

    private static func validated(_ url: URL, nameStep: Int?) -> Result<SafeTensors, CheckpointError> {
        let file: SafeTensors
        do { file = try SafeTensors(contentsOf: url) } catch { return .failure(.invalid(path: url.path, reason: "\(error)")) }
        if let reason = problem(with: file.metadata, nameStep: nameStep) { return .failure(.invalid(path: url.path, reason: reason)) }
        // Training never writes a non-finite value; one that is there came from damage.
        for name in file.names {
            let e = file[name]!
            if !e.values.allSatisfy(\.isFinite) || !e.doubles.allSatisfy(\.isFinite) {
                return .failure(.invalid(path: url.path, reason: "tensor \(name) holds NaN or infinite values"))
            }
        }
        return .success(file)
    }

    // MARK: - Cleanup after a durable write

    private func pruneCheckpoints(keeping newest: String) {
        var all = checkpoints()
        if let retains, all.count > keep {
            // The newest retained-kind checkpoint survives unless a kept one is of that kind.
            let kept = all.suffix(keep)
            let keptHasOne = kept.contains { (try? SafeTensors.metadata(of: $0.url)).map(retains) ?? false }
            if !keptHasOne, let spared = all.dropLast(keep).last(where: { (try? SafeTensors.metadata(of: $0.url)).map(retains) ?? false }) {
                all.removeAll { $0.url == spared.url }
            }
        }
        var excess = all.count - keep
        for checkpoint in all where excess > 0 && checkpoint.url.lastPathComponent != newest {
            // Counted even if unlink fails, so a stuck file never costs a newer checkpoint.
            unlink(checkpoint.url.path)
            excess -= 1
        }
    }

    /// Removes `.ckpt-*.tmp` files whose writer process is gone. Ours (a concurrent `write` in this
    /// process) and those of live processes are left alone; a reused pid only delays the cleanup.
    private func removeStaleTemporaries(ownPid: pid_t) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where name.hasPrefix(Self.tempPrefix) && name.hasSuffix(Self.tempSuffix) {
            let fields = name.dropFirst(Self.tempPrefix.count).dropLast(Self.tempSuffix.count).split(separator: "-")
            if fields.count >= 2, let pid = pid_t(fields[1]), pid > 0 {
                // kill(pid, 0) probes without signalling; EPERM means it exists under another user.
                if pid == ownPid || kill(pid, 0) == 0 || errno == EPERM { continue }
            }
            unlink(directory.appendingPathComponent(name).path)
        }
    }

    // MARK: - POSIX

    private static func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

    private static func check(_ result: Int32, _ path: String, _ operation: String) throws(CheckpointError) {
        if result != 0 { throw .io(path: path, operation: operation, message: errnoText(errno)) }
    }

    /// `mkdir -p`: creates `path` and any missing parents.
    private static func makeDirectories(_ path: String) throws(CheckpointError) {
        if mkdir(path, 0o755) == 0 { return }
        let code = errno
        switch code {
        case EEXIST:
            var info = stat()
            guard stat(path, &info) == 0 else { throw .io(path: path, operation: "stat", message: errnoText(errno)) }
            guard info.st_mode & S_IFMT == S_IFDIR else { throw .io(path: path, operation: "mkdir", message: "exists and is not a directory") }
        case ENOENT:
            let parent = (path as NSString).deletingLastPathComponent
            guard !parent.isEmpty, parent != path else { throw .io(path: path, operation: "mkdir", message: errnoText(code)) }
            try makeDirectories(parent)
            // EEXIST here: a concurrent writer created it between our two attempts.
            if mkdir(path, 0o755) != 0, errno != EEXIST { throw .io(path: path, operation: "mkdir", message: errnoText(errno)) }
        default:
            throw .io(path: path, operation: "mkdir", message: errnoText(code))
        }
    }

    /// Creates `path` (which must not exist), writes `header` and then each tensor's bytes as they
    /// are produced, and fsyncs it.
    private static func writeSynced(header: Data, tensors: [TensorStream], to path: String) throws(CheckpointError) {
        var fd: Int32
        repeat { fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw .io(path: path, operation: "open", message: errnoText(errno)) }
        var failure: CheckpointError?
        let sink = ByteSink { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 { offset += n } else if n < 0, errno == EINTR { continue } else { return n == 0 ? EIO : errno }
            }
            return 0
        }
        header.withUnsafeBytes { sink.append(raw: $0) }
        for tensor in tensors {
            let before = sink.count
            tensor.emit(sink)
            // A stream that emits the wrong length would make every later offset wrong.
            precondition(sink.count - before == tensor.byteCount, "checkpoint: \(tensor.name) emitted \(sink.count - before) bytes, declared \(tensor.byteCount)")
            if sink.failure != 0 { break }
        }
        let writeError = sink.finish()
        if writeError != 0 {
            failure = .io(path: path, operation: "write", message: errnoText(writeError))
        } else {
            while fsync(fd) != 0 {
                if errno == EINTR { continue }
                failure = .io(path: path, operation: "fsync", message: errnoText(errno))
                break
            }
        }
        // Linux releases the descriptor even when close fails, so it is never retried; an error
        // other than EINTR (e.g. EIO on network filesystems) means the data may not have landed.
        if close(fd) != 0, errno != EINTR, failure == nil {
            failure = .io(path: path, operation: "close", message: errnoText(errno))
        }
        if let failure { throw failure }
    }

    /// Makes the directory's entries (a just-renamed file) durable.
    private static func syncDirectory(_ path: String) throws(CheckpointError) {
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw .io(path: path, operation: "open directory", message: errnoText(errno)) }
        defer { close(fd) }
        while fsync(fd) != 0 {
            switch errno {
            case EINTR: continue
            // Some filesystems cannot sync a directory at all; there is nothing more to do there.
            case EINVAL: return
            default: throw .io(path: path, operation: "fsync directory", message: errnoText(errno))
            }
        }
    }
}
