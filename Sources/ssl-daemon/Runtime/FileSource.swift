import DaemonRuntime
import Foundation
import Logging
import ServiceLifecycle
import StreamDecode
import Synchronization
import TemporalContrast

/// The files to learn from: a queue of settled files (fed by the directory watcher), epochs going
/// round the corpus, the ledger of what is done, retries of transient failures, and the resume
/// replay of a file read part way. Decoding and pairing run on the caller's thread: the service's
/// own thread in a normal run, the lockstep driver's in deterministic mode.
final class FileSource: Sendable {
    private struct State {
        var pending: [URL] = []
        /// Every path ever queued (and not given up on for now): the watcher does not queue twice.
        var taken: Set<String> = []
        var busy = false
        /// The watcher has scanned every directory once (the producer can be idle, not just empty).
        var scanned = false
        /// `--once`: the watcher will queue nothing more.
        var inputEnded = false
        /// Files that failed for a reason that may pass: when to try again and the delay after that.
        var retries: [String: Retry] = [:]
        /// Positions of files being read when the resumed checkpoint was written.
        var resume: [String: FileProgress]
    }
    struct Retry: Sendable { var at: Date; var delay: Double }

    static let producerName = "files"

    private let monitor: Monitor<State>
    private let config: DaemonConfig
    private let limits: RunLimits
    let ledger: Ledger
    private let exchange: ExampleExchange
    private let statistics: RunStatistics
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)

    init(config: DaemonConfig, limits: RunLimits, ledger: Ledger, exchange: ExampleExchange, resume: [String: FileProgress],
         statistics: RunStatistics, logger: Logger) {
        monitor = Monitor(State(resume: resume))
        self.config = config
        self.limits = limits
        self.ledger = ledger
        self.exchange = exchange
        self.statistics = statistics
        self.logger = logger
        exchange.setProducer(Self.producerName, .active)
    }

    var isStopping: Bool { stopRequested.load(ordering: .relaxed) }

    func stop() {
        stopRequested.store(true, ordering: .relaxed)
        monitor.wakeAll()
        exchange.wakeAll()
    }

    // MARK: Queue

    /// Changes the queue and tells the exchange what the producer is doing now, in one lock hold
    /// (so two threads cannot publish their states out of order).
    private func change<R>(_ body: (inout State) -> R) -> R {
        monitor.update { s in
            let result = body(&s)
            let state: ExampleExchange.ProducerState =
                !s.pending.isEmpty || s.busy || !s.scanned ? .active : s.inputEnded ? .finished : .idle
            exchange.setProducer(Self.producerName, state)
            statistics.filesPending.store(s.pending.count + (s.busy ? 1 : 0), ordering: .relaxed)
            return result
        }
    }

    /// Queues a settled file (once; epochs re-queue it themselves).
    func enqueue(_ path: String) {
        change { s in
            guard s.taken.insert(path).inserted else { return }
            s.pending.append(URL(fileURLWithPath: path))
        }
    }

    /// The watcher has looked at every directory once.
    func watcherScanned() { change { $0.scanned = true } }

    /// `--once`: nothing more will be queued; the source finishes when the queue is done.
    func endOfInput() {
        change { s in
            s.scanned = true
            s.inputEnded = true
        }
    }

    /// Whether the watcher should still wait for `path`: not taken, not waiting to be retried,
    /// and not done in the ledger.
    func isUnsettled(_ path: String, size: Int64, mtime: Double) -> Bool {
        monitor.withLock { s in s.taken.contains(path) || s.retries[path] != nil ? false : true }
            && !ledger.isSettled(path, size: size, mtime: mtime, epochs: config.epochs)
    }

    /// Drops what is kept about files that no longer exist (unless still queued).
    func forget(_ paths: [String]) {
        change { s in
            let queued = Set(s.pending.map(\.path))
            for path in paths where !queued.contains(path) {
                s.taken.remove(path)
                s.retries.removeValue(forKey: path)
            }
        }
    }

    /// A pending retry of `path`, if it failed for a transient reason.
    func retry(of path: String) -> Retry? { monitor.withLock { $0.retries[path] } }

    /// The file to read next, FIFO (the service's loop), waiting for one; nil once stopped.
    private func takeNextWaiting() -> URL? {
        monitor.wait(for: { !$0.pending.isEmpty || self.isStopping }) { s in
            guard !isStopping, !s.pending.isEmpty else { return nil }
            s.busy = true
            return s.pending.removeFirst()
        }
    }

    /// The file to read next in lockstep order, without waiting: one being resumed first, then
    /// the one with the fewest epochs done, then path order (epochs go round the corpus).
    func takeNextOrdered() -> URL? {
        change { s in
            guard !s.pending.isEmpty else { return nil }
            let keys = s.pending.map { url in
                (resumed: s.resume[url.path] == nil ? 1 : 0,
                 epochs: ledger.entry(url.path).map { $0.status == .ok ? $0.epochs : 0 } ?? 0, path: url.path)
            }
            guard let i = keys.indices.min(by: { keys[$0] < keys[$1] }) else { return nil }
            s.busy = true
            return s.pending.remove(at: i)
        }
    }

    private func doneWithFile() { change { $0.busy = false } }

    // MARK: Outcomes

    func markBad(_ path: String, size: Int64, mtime: Double, reason: String) {
        logger.warning("bad file skipped", metadata: ["path": "\(path)", "reason": "\(reason)"])
        do { try ledger.record(Ledger.Entry(path: path, size: size, mtime: mtime, status: .bad, epochs: 0, reason: reason)) } catch {
            logger.error("ledger not updated", metadata: ["error": "\(error)"])
        }
        statistics.filesBad.add(1, ordering: .relaxed)
    }

    /// A file that failed for a reason that may pass (permission, I/O): not marked bad; tried again
    /// after a doubling delay (sooner if it changes). `--once` does not wait for it.
    private func scheduleRetry(_ path: String, error: DecodeError) {
        let delay = change { s -> Double in
            let delay = s.retries[path].map { min(config.retryMax, $0.delay * 2) } ?? config.retryInitial
            s.retries[path] = Retry(at: limits.once ? .distantFuture : Date().addingTimeInterval(delay), delay: delay)
            s.taken.remove(path)
            return delay
        }
        statistics.filesFailed.add(1, ordering: .relaxed)
        logger.warning("file failed; will retry", metadata: [
            "path": "\(path)", "kind": "\(error.kind.rawValue)", "error": "\(error)",
            "retry_in_seconds": "\(limits.once ? "never (--once)" : String(format: "%.0f", delay))",
        ])
    }

    private func finish(_ path: String) {
        exchange.updateProgress { $0.removeValue(forKey: path) }
        statistics.filesOK.add(1, ordering: .relaxed)
        logger.info("file done", metadata: ["path": "\(path)", "epochs": "\(config.epochs)"])
    }

    // MARK: Reading

    /// The service's loop: files in arrival order until stopped.
    func loop() {
        while let url = takeNextWaiting() {
            process(file: url, cancelled: { self.isStopping })
            doneWithFile()
        }
    }

    /// Lockstep: reads `url` on the caller's thread; `afterDelivery` runs after each item.
    func processInLockstep(_ url: URL, cancelled: () -> Bool, afterDelivery: () -> Void) {
        process(file: url, cancelled: cancelled, afterDelivery: afterDelivery)
        doneWithFile()
    }

    /// Reads one epoch of a file (the next one the ledger or the checkpoint says is due), then puts
    /// the file back at the end of the queue while epochs remain: epochs go round the corpus, so
    /// consecutive batches mix files instead of repeating one clip `epochs` times in a row.
    private func process(file url: URL, cancelled: () -> Bool, afterDelivery: () -> Void = {}) {
        let path = url.path
        let resumeAt = monitor.withLock { $0.resume.removeValue(forKey: path) }
        let source = SourceID.of(path)
        let info = DirectoryWalker.fileInfo(path)
        let size = info?.size ?? 0, mtime = info?.mtime ?? 0
        let done = ledger.epochsDone(path, size: size, mtime: mtime)
        let epoch = max(done, resumeAt?.epoch ?? 0)
        guard epoch < config.epochs else {
            finish(path)
            return
        }
        // Each epoch is its own stretch of timeline: nothing pairs across two readings.
        var pairing = SourcePairing(source: source, config: config, seedOffset: UInt64(epoch), segmentOffset: epoch * 1_000)
        // Items the checkpoint counts as consumed are paired again (rebuilding the stage) but
        // not delivered: their examples are in the restored buffer or already trained on.
        let replayUntil = resumeAt.map { $0.epoch == epoch ? $0.items : 0 } ?? 0
        var items = 0
        var decodedAnything = false
        do {
            let decoder = try MediaDecoder(path, options: config.decodeOptions(live: false))
            while let item = try decoder.next() {
                if cancelled() { return }
                items += 1
                let replaying = items <= replayUntil
                if case .segmentBoundary = item {} else { decodedAnything = true }
                let examples = pairing.ingest(item)
                if replaying && items < replayUntil { continue }
                exchange.deliver(replaying ? [] : examples, position: (path, FileProgress(epoch: epoch, items: items)),
                                 waitForRoom: !config.deterministic, cancelled: cancelled)
                afterDelivery()
            }
        } catch {
            if !decodedAnything {
                if error.isTransient {
                    scheduleRetry(path, error: error)
                } else {
                    markBad(path, size: size, mtime: mtime, reason: error.description)
                }
                exchange.updateProgress { $0.removeValue(forKey: path) }
                return
            }
            logger.warning("file ended with an error; what decoded was used", metadata: ["path": "\(path)", "error": "\(error)"])
        }
        _ = monitor.withLock { $0.retries.removeValue(forKey: path) }
        // The exchange's lock covers both: a checkpoint sees the epoch either still in progress
        // or staged for the ledger, never neither.
        exchange.updateProgress { progress in
            progress.removeValue(forKey: path)
            // Written to the ledger file once a checkpoint covers this epoch.
            ledger.stage(Ledger.Entry(path: path, size: size, mtime: mtime, status: .ok, epochs: epoch + 1))
        }
        if epoch + 1 < config.epochs {
            change { $0.pending.append(url) }
        } else {
            finish(path)
        }
    }
}

/// The file source as a service: its loop on a dedicated thread; it reports `finished` to the
/// exchange on its own (`--once`) and returns when told to stop.
struct FileSourceService: Service {
    let files: FileSource

    func run() async throws {
        let files = self.files
        await runBlockingService(name: "files", stop: { files.stop() }) { files.loop() }
    }
}
