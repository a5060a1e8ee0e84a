import DaemonRuntime
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Watches the configured directories and queues each file on the file source once it has
/// settled (stopped growing for `sources.settle_seconds`, or is that old already). inotify wakes it
/// as soon as something changes; polling at `sources.poll_interval` is the fallback. Directories
/// that are missing or unreadable are warned about once and rescanned until they appear.
///
/// `scan()` is one pass; the service loops over it on its own thread, the lockstep driver calls
/// it between files.
final class DirectoryWatcher: @unchecked Sendable {
    private let config: DaemonConfig
    private let limits: RunLimits
    private let files: FileSource
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)

    // Used only by the thread that calls `scan()` (the service's, or the lockstep driver's); that
    // confinement is why this class may be shared.
    private var seen: [String: (size: Int64, mtime: Double, since: Date)] = [:]
    private let events = DirectoryEvents()
    private var missingRoots: Set<String> = []
    /// Which files this process learns from (under mpirun with split files: those whose path
    /// hashes to its rank); the others are left to the other ranks, unrecorded.
    private let owns: @Sendable (String) -> Bool

    init(config: DaemonConfig, limits: RunLimits, files: FileSource, logger: Logger, owns: @escaping @Sendable (String) -> Bool = { _ in true }) {
        self.config = config
        self.limits = limits
        self.files = files
        self.logger = logger
        self.owns = owns
    }

    func stop() {
        stopRequested.store(true, ordering: .relaxed)
        events.interrupt()
    }
    private var isStopping: Bool { stopRequested.load(ordering: .relaxed) }

    /// Whether a file seen in a watched directory is still settling (not yet queued, not done).
    var hasUnsettled: Bool {
        seen.contains { path, info in files.isUnsettled(path, size: info.size, mtime: info.mtime) }
    }

    /// Waits up to `seconds` for a change in a watched directory.
    func waitForChange(seconds: Double) { _ = events.wait(seconds: seconds) }

    /// The service's loop: scan, then wait for a change or the poll interval. With `--once`, ends
    /// the file source's input as soon as every file present at start has settled and been queued.
    func loop() {
        while !isStopping {
            scan()
            if limits.once {
                if !hasUnsettled {
                    files.endOfInput()
                    return
                }
                waitForChange(seconds: 0.2)
            } else {
                files.watcherScanned()
                // Settling files are re-checked at least this often.
                waitForChange(seconds: min(config.pollInterval, max(0.2, config.settleSeconds)))
            }
        }
    }

    /// One pass over every watched directory.
    func scan() {
        for dir in config.watch {
            events.watch(dir)
            scan(directory: dir)
        }
    }

    private func scan(directory: String) {
        switch DirectoryWalker.rootState(directory) {
        case .directory:
            if missingRoots.remove(directory) != nil {
                logger.notice("watched directory is there now", metadata: ["path": "\(directory)"])
            }
        case let problem:
            // Warned once; rescanned every poll, so the directory is taken as soon as it appears.
            if missingRoots.insert(directory).inserted {
                let reason = switch problem {
                case .missing: "does not exist"
                case .notDirectory: "is not a directory"
                case .unreadable(let why): "cannot be read: \(why)"
                case .directory: ""
                }
                logger.warning("watched directory unavailable: waiting for it", metadata: ["path": "\(directory)", "reason": "\(reason)"])
            }
            return
        }
        let (walked, problems) = DirectoryWalker.walk(directory) { events.watch($0) }
        let found = walked.filter { owns($0.path) }
        for problem in problems {
            switch problem {
            case .brokenLink(let path):
                // Dangling links and loops cannot be opened: recorded once (by their owner).
                if owns(path) && files.ledger.entry(path) == nil { files.markBad(path, size: 0, mtime: 0, reason: "broken symbolic link or link loop") }
            case .unreadable(let path, let reason):
                if missingRoots.insert(path).inserted {
                    logger.warning("directory below a watched one cannot be read", metadata: ["path": "\(path)", "reason": "\(reason)"])
                }
            }
        }
        // Files that are gone (deleted, rotated away) are forgotten, so months of a directory whose
        // files come and go do not grow this bookkeeping; the ledger keeps what was learned.
        let present = Set(found.map(\.path))
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        let gone = seen.keys.filter { $0.hasPrefix(prefix) && !present.contains($0) }
        if !gone.isEmpty {
            for path in gone { seen.removeValue(forKey: path) }
            files.forget(gone)
        }
        let now = Date()
        for file in found {
            let path = file.path, size = file.size, mtime = file.mtime
            if files.ledger.isSettled(path, size: size, mtime: mtime, epochs: config.epochs) { continue }
            if let retry = files.retry(of: path), retry.at > now, seen[path].map({ $0.size == size && $0.mtime == mtime }) ?? true {
                continue  // a transient failure: retried when its delay is up, or once the file changes
            }
            if let previous = seen[path], previous.size == size, previous.mtime == mtime {
                let stable = now.timeIntervalSince(previous.since) >= config.settleSeconds
                    || now.timeIntervalSince1970 - mtime >= config.settleSeconds
                if stable { files.enqueue(path) }
            } else {
                seen[path] = (size, mtime, now)
                if now.timeIntervalSince1970 - mtime >= config.settleSeconds { files.enqueue(path) }
            }
        }
    }
}

/// The watcher as a service: its loop on a dedicated thread; returns when told to stop.
struct DirectoryWatcherService: Service {
    let watcher: DirectoryWatcher

    func run() async throws {
        let watcher = self.watcher
        await runBlockingService(name: "scanner", stop: { watcher.stop() }) { watcher.loop() }
    }
}
