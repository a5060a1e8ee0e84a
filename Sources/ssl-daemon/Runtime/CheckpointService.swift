import DaemonRuntime
import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TemporalContrast

/// What a checkpoint holds besides the learner: captured on the trainer's thread between steps
/// (or after the trainer has ended), written on the checkpoint queue.
struct CheckpointSnapshot: Sendable {
    var model: SafeTensors
    var step: Int
    var progress: [String: FileProgress]
    /// Nil for a light checkpoint.
    var buffer: ReplayBuffer?
    /// Finished epochs that go to the ledger once this checkpoint is durable.
    var covered: [Ledger.Entry]
}

/// The state a run starts from: what the newest fitting checkpoint held (the learner itself is
/// restored in place), or a fresh start.
struct ResumedState: Sendable {
    var checkpoint: URL?
    var rng: RandomSource?
    var progress: [String: FileProgress] = [:]
    var buffer: ReplayBuffer?
}

/// Owns the checkpoint directory: resume at start, periodic writes on its own queue from
/// snapshots, the final write at shutdown (it is the first service started, so the last one
/// stopped), and the ledger commits that follow each durable checkpoint.
///
/// Periodic checkpoints are "light" (model, optimizer, queue, RNG, progress) except every
/// `checkpoint.replay_every`-th, the final one and every one in deterministic mode, which also
/// carry the replay buffer: that keeps the bytes written per hour small.
final class CheckpointService: Service, Sendable {
    private struct State {
        var lastCheckpoint: URL?
        /// When the last checkpoint became durable, and how long writing it took (seconds).
        var lastWritten: (at: Date, seconds: Double)?
        var nextDue: Date
        var started = 0
        var inFlight = false
        var lastError: String?
        var finalWritten = false
    }

    let store: CheckpointStore
    private let ledger: Ledger
    private let config: DaemonConfig
    private let logger: Logger
    private let statistics: RunStatistics
    private let state: Mutex<State>
    private let queue = DispatchQueue(label: "ssl-daemon.checkpoint")
    /// Set by the wiring: the final snapshot, taken after the trainer has stopped; nil when
    /// there must be no final checkpoint (training diverged).
    private let finalSnapshot = Mutex<(@Sendable () -> CheckpointSnapshot?)?>(nil)

    /// False on ranks other than 0 under mpirun: they write no checkpoint (rank 0 holds the
    /// model for all), and resume from what rank 0 sends.
    let writes: Bool

    init(stateDirectory: URL, ledger: Ledger, config: DaemonConfig, logger: Logger, statistics: RunStatistics, writes: Bool = true) {
        self.writes = writes
        // Light checkpoints (no replay buffer) must not prune the newest full one away.
        store = CheckpointStore(directory: stateDirectory.appendingPathComponent("checkpoints"), keep: config.keep) { $0["replay.entries"] != nil }
        self.ledger = ledger
        self.config = config
        self.logger = logger
        self.statistics = statistics
        state = Mutex(State(nextDue: Date().addingTimeInterval(config.checkpointEvery)))
    }

    var lastCheckpoint: URL? { state.withLock { $0.lastCheckpoint } }
    var lastWritten: (at: Date, seconds: Double)? { state.withLock { $0.lastWritten } }
    var lastError: String? { state.withLock { $0.lastError } }
    var finalWritten: Bool { state.withLock { $0.finalWritten } }

    func setFinalSnapshot(_ make: @escaping @Sendable () -> CheckpointSnapshot?) {
        finalSnapshot.withLock { $0 = make }
    }

    // MARK: Resume

    /// Restores `learner` from the newest checkpoint that validates and fits this model, trying
    /// older ones when it does not; each skipped one is logged with its reason. Damaged ones (not
    /// readable as a checkpoint, non-finite values) newer than the one resumed from are renamed
    /// `*.rejected`, so they are neither tried again nor pruned in place of good ones. Refuses to
    /// start when checkpoints exist that are intact but none fits (a changed model config):
    /// starting fresh would prune them.
    func resume(into learner: Learner, stateDirectory: URL) throws(DaemonError) -> ResumedState {
        var skippedDamaged: [URL] = []
        var misfits: [String] = []
        for candidate in store.checkpoints().reversed() {
            let file: SafeTensors
            do { file = try CheckpointStore.load(candidate.url) } catch {
                logger.warning("skipping damaged checkpoint", metadata: ["checkpoint": "\(candidate.url.path)", "reason": "\(error)"])
                skippedDamaged.append(candidate.url)
                continue
            }
            do { try learner.restore(file) } catch {
                logger.warning("skipping checkpoint that does not fit", metadata: ["checkpoint": "\(candidate.url.path)", "reason": "\(error.description)"])
                misfits.append("\(candidate.url.lastPathComponent): \(error.description)")
                continue
            }
            let resumed = restoreRest(of: file, from: candidate.url, step: learner.step)
            reject(skippedDamaged)
            state.withLock { $0.lastCheckpoint = candidate.url }
            ledger.trust(upToStep: learner.step)
            compactLedger(fallback: learner.step)
            logger.info("resumed", metadata: ["checkpoint": "\(candidate.url.path)", "step": "\(learner.step)"])
            return resumed
        }
        if !misfits.isEmpty {
            throw .noFittingCheckpoint(directory: store.directory.path, stateDirectory: stateDirectory.path, reasons: misfits)
        }
        reject(skippedDamaged)
        ledger.trust(upToStep: nil)
        logger.info("starting fresh", metadata: ["state_dir": "\(stateDirectory.path)"])
        return ResumedState()
    }

    /// Compacts the ledger (when it has grown past twice what it needs) for the checkpoints kept.
    private func compactLedger(fallback step: Int) {
        do {
            if try ledger.compact(oldestRetainedStep: store.checkpoints().first?.step ?? step) {
                logger.info("ledger compacted", metadata: ["lines": "\(ledger.lineCount)"])
            }
        } catch {
            logger.error("ledger not compacted", metadata: ["error": "\(error)"])
        }
    }

    /// RNG, file progress, finished epochs and the replay buffer of a checkpoint the learner has
    /// just restored from. Each is optional: what is missing or damaged is logged and rebuilt.
    private func restoreRest(of file: SafeTensors, from url: URL, step: Int) -> ResumedState {
        var resumed = ResumedState(checkpoint: url)
        if let raw = file.metadata["rng"] {
            resumed.rng = RandomSource(state: raw.split(separator: ",").compactMap { UInt64($0, radix: 16) })
            if resumed.rng == nil {
                logger.warning("checkpoint RNG state is not valid: sampling continues from a fresh seed", metadata: ["checkpoint": "\(url.path)"])
            }
        }
        if let json = file.metadata["progress"] {
            if let decoded = try? JSONDecoder().decode([String: FileProgress].self, from: Data(json.utf8)),
                decoded.values.allSatisfy({ $0.epoch >= 0 && $0.items >= 0 })
            {
                // Until a file is read again its position is carried into new checkpoints as is;
                // files that are gone are dropped.
                resumed.progress = decoded.filter { FileManager.default.fileExists(atPath: $0.key) }
            } else {
                logger.warning("checkpoint file progress is not valid: files being read restart from their beginning", metadata: ["checkpoint": "\(url.path)"])
            }
        }
        // Epochs the checkpoint covers whose ledger lines may not have been appended (a crash
        // right after the checkpoint became durable).
        if let json = file.metadata["ledger.covered"] {
            if let entries = try? JSONDecoder().decode([Ledger.Entry].self, from: Data(json.utf8)) {
                let missing = entries.filter { e in ledger.entry(e.path).map { $0.epochs < e.epochs || $0.size != e.size || $0.mtime != e.mtime } ?? true }
                do { try ledger.commit(missing, step: step) } catch {
                    logger.error("ledger: cannot record the epochs the checkpoint covers", metadata: ["error": "\(error)"])
                }
            } else {
                logger.warning("checkpoint ledger entries are not valid: some files may be read again", metadata: ["checkpoint": "\(url.path)"])
            }
        }
        // A light checkpoint carries no replay buffer: take it from the newest full one before it.
        var replaySource: (URL, SafeTensors)? = file.metadata["replay.entries"] != nil ? (url, file) : nil
        if replaySource == nil {
            for candidate in store.checkpoints().reversed() where candidate.url.lastPathComponent < url.lastPathComponent {
                guard (try? SafeTensors.metadata(of: candidate.url))?["replay.entries"] != nil,
                    let older = try? CheckpointStore.load(candidate.url)
                else { continue }
                replaySource = (candidate.url, older)
                break
            }
        }
        guard let (replayURL, replayFile) = replaySource else { return resumed }
        do {
            if let restored = try ReplayBuffer(restoring: replayFile, byteLimit: config.pairing.bufferBytes, policy: config.pairing.bufferPolicy) {
                resumed.buffer = restored
                if replayURL != url {
                    logger.info("replay buffer restored from an earlier checkpoint", metadata: ["checkpoint": "\(replayURL.path)", "entries": "\(restored.count)"])
                }
            }
        } catch {
            logger.warning("replay buffer not restored: it refills from the sources", metadata: ["checkpoint": "\(replayURL.path)", "error": "\(error)"])
        }
        return resumed
    }

    /// Moves damaged checkpoints out of the store's way, keeping their bytes for inspection.
    private func reject(_ urls: [URL]) {
        for url in urls {
            let target = url.path + ".rejected"
            if rename(url.path, target) == 0 {
                logger.warning("damaged checkpoint set aside", metadata: ["checkpoint": "\(target)"])
            } else {
                logger.error("cannot set a damaged checkpoint aside", metadata: ["checkpoint": "\(url.path)", "error": "\(DaemonError.errnoText(errno))"])
            }
        }
    }

    // MARK: Writing

    /// Whether a periodic checkpoint is due (and none is being written).
    var isDue: Bool { writes && state.withLock { !$0.inFlight && Date() >= $0.nextDue } }

    /// Whether the next checkpoint carries the replay buffer; counts it as started.
    func beginCheckpoint(final: Bool) -> Bool {
        state.withLock { s in
            let full = final || config.deterministic || (config.replayEvery > 0 && s.started % config.replayEvery == 0)
            s.started += 1
            s.inFlight = true
            return full
        }
    }

    /// A begun checkpoint that will not be written (no snapshot could be taken).
    func abandonCheckpoint() { state.withLock { $0.inFlight = false } }

    /// Finished epochs not yet covered by a durable checkpoint.
    var ledgerStaged: [Ledger.Entry] { ledger.staged }

    /// Records finished epochs with `step` (a rank other than 0, when rank 0 checkpoints).
    func commit(_ entries: [Ledger.Entry], step: Int) {
        do { try ledger.commit(entries, step: step) } catch {
            logger.error("ledger not updated", metadata: ["error": "\(error)"])
        }
    }

    /// A rank other than 0 under mpirun: only the ledger lines of checkpoints up to rank 0's
    /// resume step count.
    func trustLedger(upToStep step: Int?) { ledger.trust(upToStep: step) }

    /// Writes `snapshot` on the checkpoint queue, streamed to disk; with `wait`, blocks until it
    /// is durable and returns whether it is. Finished epochs go to the ledger only after the
    /// checkpoint that covers them is durable. A failure is retried soon (not after a whole
    /// interval); the previous checkpoints stay intact.
    @discardableResult
    func write(_ snapshot: CheckpointSnapshot, wait: Bool) -> Bool {
        var model = snapshot.model
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        model.metadata["config"] = config.toml()
        model.metadata["wall_clock"] = ISO8601DateFormatter().string(from: Date())
        model.metadata["progress"] = String(decoding: (try? encoder.encode(snapshot.progress)) ?? Data("{}".utf8), as: UTF8.self)
        if !snapshot.covered.isEmpty {
            model.metadata["ledger.covered"] = String(decoding: (try? encoder.encode(snapshot.covered)) ?? Data("[]".utf8), as: UTF8.self)
        }
        let partial = model, step = snapshot.step, buffer = snapshot.buffer, covered = snapshot.covered
        let succeeded = Mutex(false)
        let work: @Sendable () -> Void = {
            var metadata = partial.metadata
            var tensors = partial.streams
            if let buffer {
                let replay = buffer.tensorStreams()
                tensors += replay.tensors
                metadata.merge(replay.metadata) { $1 }
            }
            let started = Date()
            do {
                let url = try self.store.write(metadata: metadata, tensors: tensors, step: step)
                self.state.withLock { s in
                    s.lastCheckpoint = url
                    s.lastWritten = (Date(), Date().timeIntervalSince(started))
                    s.inFlight = false
                    s.nextDue = started.addingTimeInterval(self.config.checkpointEvery)
                }
                succeeded.withLock { $0 = true }
                ComputeThreads.releaseFreeMemory()
                self.logger.info("checkpoint written", metadata: [
                    "path": "\(url.path)", "step": "\(step)", "replay_buffer": "\(buffer != nil)",
                    "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(started)))",
                ])
                do {
                    try self.ledger.commit(covered, step: step)
                    self.compactLedger(fallback: step)
                } catch {
                    // The checkpoint records these epochs too; a restart re-applies them.
                    self.logger.error("ledger not updated", metadata: ["error": "\(error)"])
                }
            } catch {
                let retry = min(30, self.config.checkpointEvery)
                self.statistics.checkpointFailures.add(1, ordering: .relaxed)
                self.state.withLock { s in
                    s.lastError = "\(error)"
                    s.inFlight = false
                    s.nextDue = Date().addingTimeInterval(retry)
                }
                self.logger.error("checkpoint failed", metadata: ["error": "\(error)", "step": "\(step)", "retry_in_seconds": "\(retry)"])
            }
        }
        if wait { queue.sync(execute: work) } else { queue.async(execute: work) }
        return succeeded.withLock { $0 }
    }

    // MARK: Service

    /// Waits for shutdown (every later service has stopped by then: the trainer has finished its
    /// step), then writes the final checkpoint, with the replay buffer, and waits for it.
    func run() async throws {
        await exitingOnCancel {
            try? await gracefulShutdown()
            guard writes else {
                // Nothing to write here: rank 0 checkpoints for every rank.
                state.withLock { $0.finalWritten = true }
                return
            }
            // Taken out, so the closure (which holds the trainer, which holds this service) does
            // not keep both alive after the run.
            let make = finalSnapshot.withLock { make in
                defer { make = nil }
                return make
            }
            let written = await onDedicatedThread(name: "checkpoint-final") { () -> Bool in
                _ = self.beginCheckpoint(final: true)
                guard let snapshot = make?() else {
                    self.abandonCheckpoint()
                    return false
                }
                return self.write(snapshot, wait: true)
            }
            state.withLock { $0.finalWritten = written }
        }
    }
}
