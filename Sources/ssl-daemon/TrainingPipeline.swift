import DaemonRuntime
import Dispatch
import Foundation
import Logging
import StreamDecode
import Synchronization
import TemporalContrast

/// How a run should end, on top of the config.
struct RunLimits: Sendable {
    /// Process the files present at start once, then stop (a batch job).
    var once = false
    /// Stop when the learner's step count (earlier runs included) reaches this.
    var maxSteps: Int?
}

/// The JSON line printed at exit.
struct RunSummary: Encodable {
    struct Pairs: Encodable { var temporal = 0, tracked = 0, audio_video = 0 }
    struct Files: Encodable { var ok = 0, bad = 0, failed = 0 }
    var steps: Int
    var pairs: Pairs
    var files: Files
    var loss_first: Double?
    var loss_last: Double?
    var checkpoint: String?
    var dropped_frames: Int
    var skipped_updates: Int
    /// Examples trained on in this run (a step may take fewer than the batch when a kind is short).
    var pairs_trained: Int
    /// Checkpoint writes that failed (each was retried); the last one's error when the final
    /// checkpoint failed, in which case the run exits 1.
    var checkpoint_failures: Int
    var checkpoint_error: String?
    /// Set when training stopped because the parameters stopped being finite.
    var diverged: Bool
}

/// Where a file's reading stopped: which epoch, and how many decoded items (frames, audio chunks,
/// boundaries) pairing has consumed. Saved in checkpoints;
/// a resumed file replays its first `items` through pairing (rebuilding the stage's state) without
/// delivering them again.
struct FileProgress: Codable, Equatable {
    var epoch: Int
    var items: Int
}

/// The running daemon: sources feed pairing on their own threads, the replay buffer sits between
/// them and the trainer (the calling thread of `run()`), and checkpoints are written on their own
/// queue from a snapshot taken between steps.
///
/// With `training.deterministic` there are no source threads: the trainer thread reads the files
/// in path order and trains whenever the backpressure bound is reached (lockstep), so a run is a
/// pure function of its config and files, and resuming from a checkpoint reproduces it exactly.
final class TrainingPipeline: @unchecked Sendable {
    let config: DaemonConfig
    let limits: RunLimits
    let logger: Logger
    let notifier: SystemdNotifier?
    let stateDirectory: URL
    /// Held for the life of the pipeline: no second daemon may use this state directory.
    private let stateLock: StateDirectory
    let store: CheckpointStore
    let ledger: Ledger
    let learner: Learner

    /// Guards everything below it; trainer and sources wait on it instead of spinning.
    private let state = NSCondition()
    private var buffer: ReplayBuffer
    private var stopping = false
    private var pendingFiles: [URL] = []
    private var queuedPaths: Set<String> = []
    private var fileWorkerBusy = false
    private var scannedOnce = false
    private var liveInterrupts: [DecodeInterrupt] = []
    private var liveConnected = 0
    private var summaryPairs = RunSummary.Pairs()
    private var summaryFiles = RunSummary.Files()
    private var droppedFrames = 0
    /// Files being read, saved in checkpoints (with the replay buffer, which holds their examples).
    private var progress: [String: FileProgress] = [:]
    private var resumeProgress: [String: FileProgress] = [:]

    /// The first and the latest 20 losses, for the summary.
    private var lossesFirst: [Float] = []
    private var lossesLast: [Float] = []
    private var lastCheckpoint: URL?
    private let checkpointQueue = DispatchQueue(label: "ssl-daemon.checkpoint")
    private var nextCheckpointDue: Date
    private var checkpointsStarted = 0
    private var checkpointInFlight = false
    private var checkpointFailures = 0
    private var lastCheckpointError: String?
    private var diverged = false
    /// Files that failed for a transient reason (permission, I/O): when to try again and the delay
    /// after that; content failures go to the ledger as bad instead.
    private var retries: [String: (at: Date, delay: Double)] = [:]
    /// Watched directories that were not there (or not directories) at the last scan.
    private var missingRoots: Set<String> = []
    private var rng: RandomSource
    private var pairsTrained = 0
    private var lastStatusTime = Date()
    private var lastStatusPairs = 0
    private var lastWatchdogStep = -1

    init(config: DaemonConfig, limits: RunLimits, logger: Logger, notifier: SystemdNotifier?) throws {
        self.config = config
        self.limits = limits
        self.logger = logger
        self.notifier = notifier
        stateLock = try StateDirectory(path: config.stateDir)
        stateDirectory = stateLock.url
        // Light checkpoints (no replay buffer) must not prune the newest full one away.
        store = CheckpointStore(directory: stateDirectory.appendingPathComponent("checkpoints"), keep: config.keep) { $0["replay.entries"] != nil }
        ledger = try Ledger(stateDirectory: stateDirectory)
        nextCheckpointDue = Date().addingTimeInterval(config.checkpointEvery)
        var lc = LearnerConfig()
        lc.video = BackboneArchitecture(rawValue: config.videoArchitecture)!
        lc.hidden = config.projectionHidden
        lc.embedding = config.embedding
        lc.objective = LearnerConfig.Objective(rawValue: config.objective)!
        lc.temperature = Float(config.temperature)
        lc.queue = config.queue
        lc.keyMomentum = Float(config.keyMomentum)
        // A short window: masking everything within `far` would leave short clips with no negatives.
        lc.maskWindow = config.maskWindow
        lc.audioWeight = Float(config.audioWeight)
        lc.optimizer = LearnerConfig.OptimizerKind(rawValue: config.optimizer)!
        lc.learningRate = Float(config.learningRate)
        lc.momentum = Float(config.sgdMomentum)
        lc.weightDecay = Float(config.weightDecay)
        lc.warmupSteps = config.warmupSteps
        lc.maxGradientNorm = Float(config.maxGradientNorm)
        lc.seed = UInt64(config.seed)
        learner = Learner(config: lc)
        buffer = ReplayBuffer(byteLimit: config.pairing.bufferBytes)
        rng = RandomSource(seed: UInt64(config.seed) &+ 0x5EED)
        try resume()
    }

    // MARK: - Resume and checkpoints

    /// Resumes from the newest checkpoint that validates and fits this model, trying older ones
    /// when it does not; each skipped one is logged with its reason. Damaged ones (not readable as
    /// a checkpoint, non-finite values) that are newer than the one resumed from are renamed
    /// `*.rejected`, so they are neither tried again nor pruned in place of good ones. Refuses to
    /// start when checkpoints exist that are intact but none fits (a changed model config):
    /// starting fresh would prune them.
    private func resume() throws {
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
            restoreRest(of: file, from: candidate.url)
            reject(skippedDamaged)
            lastCheckpoint = candidate.url
            ledger.trust(upToStep: learner.step)
            logger.info("resumed", metadata: ["checkpoint": "\(candidate.url.path)", "step": "\(learner.step)"])
            return
        }
        if !misfits.isEmpty {
            throw ConfigError(description: """
                no checkpoint in \(store.directory.path) fits this config (\(misfits.joined(separator: "; "))). \
                Run with the config they were trained with (`ssl-daemon inspect \(stateDirectory.path)` prints it), \
                or move the checkpoints away to start fresh
                """)
        }
        reject(skippedDamaged)
        ledger.trust(upToStep: nil)
        logger.info("starting fresh", metadata: ["state_dir": "\(stateDirectory.path)"])
    }

    /// RNG, file progress, finished epochs and the replay buffer of a checkpoint the learner has
    /// just restored from. Each is optional: what is missing or damaged is logged and rebuilt.
    private func restoreRest(of file: SafeTensors, from url: URL) {
        if let raw = file.metadata["rng"] {
            if let restored = RandomSource(state: raw.split(separator: ",").compactMap { UInt64($0, radix: 16) }) {
                rng = restored
            } else {
                logger.warning("checkpoint RNG state is not valid: sampling continues from a fresh seed", metadata: ["checkpoint": "\(url.path)"])
            }
        }
        if let json = file.metadata["progress"] {
            if let decoded = try? JSONDecoder().decode([String: FileProgress].self, from: Data(json.utf8)),
                decoded.values.allSatisfy({ $0.epoch >= 0 && $0.items >= 0 })
            {
                // Until a file is read again its position is carried into new checkpoints as is;
                // files that are gone are dropped.
                resumeProgress = decoded.filter { FileManager.default.fileExists(atPath: $0.key) }
                progress = resumeProgress
            } else {
                logger.warning("checkpoint file progress is not valid: files being read restart from their beginning", metadata: ["checkpoint": "\(url.path)"])
            }
        }
        // Epochs the checkpoint covers whose ledger lines may not have been appended (a crash
        // right after the checkpoint became durable).
        if let json = file.metadata["ledger.covered"] {
            if let entries = try? JSONDecoder().decode([Ledger.Entry].self, from: Data(json.utf8)) {
                let missing = entries.filter { e in ledger.entry(e.path).map { $0.epochs < e.epochs || $0.size != e.size || $0.mtime != e.mtime } ?? true }
                do { try ledger.commit(missing, step: learner.step) } catch {
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
        guard let (replayURL, replayFile) = replaySource else { return }
        do {
            if let restored = try ReplayBuffer(restoring: replayFile, byteLimit: config.pairing.bufferBytes) {
                buffer = restored
                if replayURL != url {
                    logger.info("replay buffer restored from an earlier checkpoint", metadata: ["checkpoint": "\(replayURL.path)", "entries": "\(restored.count)"])
                }
            }
        } catch {
            logger.warning("replay buffer not restored: it refills from the sources", metadata: ["checkpoint": "\(replayURL.path)", "error": "\(error)"])
        }
    }

    /// Moves damaged checkpoints out of the store's way, keeping their bytes for inspection.
    private func reject(_ urls: [URL]) {
        for url in urls {
            let target = url.path + ".rejected"
            if rename(url.path, target) == 0 {
                logger.warning("damaged checkpoint set aside", metadata: ["checkpoint": "\(target)"])
            } else {
                logger.error("cannot set a damaged checkpoint aside", metadata: ["checkpoint": "\(url.path)", "error": "\(String(cString: strerror(errno)))"])
            }
        }
    }

    /// A consistent snapshot (taken on the trainer thread, between steps) written on the
    /// checkpoint queue, streamed to disk; `wait` blocks until it is durable and returns whether it
    /// is. Every `checkpoint.replay_every`-th checkpoint, the final one and every one in
    /// deterministic mode carry the replay buffer; the others ("light") hold the model, optimizer,
    /// queue, RNG and progress only, which keeps the bytes written per hour small. Finished epochs
    /// go to the ledger only after the checkpoint that covers them is durable.
    @discardableResult
    private func checkpoint(wait: Bool, final: Bool = false) -> Bool {
        guard learner.parametersAreFinite else {
            // Never write garbage over (and prune) the last good checkpoints.
            logger.critical("parameters are not finite: training diverged; not checkpointing, stopping", metadata: ["step": "\(learner.step)"])
            state.withLock { diverged = true }
            requestStop()
            return false
        }
        var file = learner.state()
        file.metadata["rng"] = rng.state.map { String($0, radix: 16) }.joined(separator: ",")
        file.metadata["config"] = config.toml()
        file.metadata["wall_clock"] = ISO8601DateFormatter().string(from: Date())
        let full = final || config.deterministic || (config.replayEvery > 0 && checkpointsStarted % config.replayEvery == 0)
        checkpointsStarted += 1
        // Progress, buffer and finished epochs under one lock: the buffer holds exactly the
        // examples of the items that progress counts as consumed.
        state.lock()
        let snapshot = progress
        let bufferSnapshot: ReplayBuffer? = full ? buffer : nil
        let covered = ledger.staged
        checkpointInFlight = true
        state.unlock()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        file.metadata["progress"] = String(decoding: (try? encoder.encode(snapshot)) ?? Data("{}".utf8), as: UTF8.self)
        if !covered.isEmpty { file.metadata["ledger.covered"] = String(decoding: (try? encoder.encode(covered)) ?? Data("[]".utf8), as: UTF8.self) }
        let step = learner.step
        let partial = file
        let succeeded = Mutex(false)
        let work: @Sendable () -> Void = {
            var metadata = partial.metadata
            var tensors = partial.streams
            if let bufferSnapshot {
                let replay = bufferSnapshot.tensorStreams()
                tensors += replay.tensors
                metadata.merge(replay.metadata) { $1 }
            }
            let started = Date()
            do {
                let url = try self.store.write(metadata: metadata, tensors: tensors, step: step)
                self.state.withLock {
                    self.lastCheckpoint = url
                    self.checkpointInFlight = false
                    self.nextCheckpointDue = started.addingTimeInterval(self.config.checkpointEvery)
                }
                succeeded.withLock { $0 = true }
                ComputeThreads.releaseFreeMemory()
                self.logger.info("checkpoint written", metadata: [
                    "path": "\(url.path)", "step": "\(step)", "replay_buffer": "\(bufferSnapshot != nil)",
                    "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(started)))",
                ])
                do {
                    try self.ledger.commit(covered, step: step)
                    let oldest = self.store.checkpoints().first?.step ?? step
                    if try self.ledger.compact(oldestRetainedStep: oldest) {
                        self.logger.info("ledger compacted", metadata: ["lines": "\(self.ledger.lineCount)"])
                    }
                } catch {
                    // The checkpoint records these epochs too; a restart re-applies them.
                    self.logger.error("ledger not updated", metadata: ["error": "\(error)"])
                }
            } catch {
                // Retried soon (not after a whole interval); the previous checkpoints are intact.
                let retry = min(30, self.config.checkpointEvery)
                self.state.withLock {
                    self.checkpointFailures += 1
                    self.lastCheckpointError = "\(error)"
                    self.checkpointInFlight = false
                    self.nextCheckpointDue = Date().addingTimeInterval(retry)
                }
                self.logger.error("checkpoint failed", metadata: ["error": "\(error)", "step": "\(step)", "retry_in_seconds": "\(retry)"])
            }
        }
        if wait { checkpointQueue.sync(execute: work) } else { checkpointQueue.async(execute: work) }
        return succeeded.withLock { $0 }
    }

    // MARK: - Control

    /// Graceful stop (a signal): sources stop, the trainer finishes its step, a checkpoint follows.
    func requestStop() {
        state.lock()
        stopping = true
        let interrupts = liveInterrupts
        state.broadcast()
        state.unlock()
        for i in interrupts { i.interrupt() }
    }

    // MARK: - Run

    /// Runs until a limit is reached or `requestStop()`; returns the summary.
    func run() -> RunSummary {
        ComputeThreads.configure(config.computeThreads)
        logger.info("starting", metadata: [
            "watch": "\(config.watch)", "streams": "\(config.streams.map(MediaSource.redacted))", "step": "\(learner.step)",
            "compute_threads": "\(config.computeThreads)", "blas_core": "\(ComputeThreads.blasCore)",
        ])
        if let maxSteps = limits.maxSteps, learner.step >= maxSteps {
            return summary(finalCheckpoint: checkpoint(wait: true, final: true))
        }
        if config.deterministic {
            notifier?.ready()
            lockstepLoop()
        } else {
            startThread(name: "scanner") { self.scanLoop() }
            startThread(name: "files") { self.fileLoop() }
            for (i, url) in config.streams.enumerated() { startLiveSource(url, index: i) }
            notifier?.ready()
            trainLoop()
        }
        notifier?.stopping()
        requestStop()
        if state.withLock({ diverged }) { return summary(finalCheckpoint: false) }
        return summary(finalCheckpoint: checkpoint(wait: true, final: true))
    }

    private func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = name
        thread.start()
    }

    /// The run's summary; `finalCheckpoint` says whether the final checkpoint is durable.
    private func summary(finalCheckpoint: Bool) -> RunSummary {
        state.lock()
        defer { state.unlock() }
        // Skipped (non-finite) steps do not enter the means: JSON has no NaN.
        func mean(_ xs: [Float]) -> Double? {
            let finite = xs.filter(\.isFinite)
            return finite.isEmpty ? nil : Double(finite.reduce(0, +)) / Double(finite.count)
        }
        return RunSummary(
            steps: learner.step, pairs: summaryPairs, files: summaryFiles,
            loss_first: mean(lossesFirst), loss_last: mean(lossesLast),
            checkpoint: lastCheckpoint?.path, dropped_frames: droppedFrames, skipped_updates: learner.skippedUpdates,
            pairs_trained: pairsTrained, checkpoint_failures: checkpointFailures,
            checkpoint_error: finalCheckpoint ? nil : diverged ? "training diverged: no checkpoint written" : (lastCheckpointError ?? "final checkpoint not written"),
            diverged: diverged)
    }

    // MARK: - Trainer

    private func trainLoop() {
        let batchSize = config.batch
        while true {
            state.lock()
            if stopping { state.unlock(); return }
            if let maxSteps = limits.maxSteps, learner.step >= maxSteps { state.unlock(); return }
            let available = buffer.available(maxUses: config.maxReuse)
            let filesIdle = pendingFiles.isEmpty && !fileWorkerBusy
            // Train once a batch is there; with no source left to feed us, train on what remains.
            let sourcesDone = filesIdle && scannedOnce && config.streams.isEmpty
            let examples = available >= batchSize || (sourcesDone && available >= 2) ? drawBatch() : []
            if !examples.isEmpty { state.broadcast() }  // files waiting on backpressure may go on
            // No batch yet, or only kinds the mix gives no share: idle until new data (no busy
            // waiting), waking periodically for checkpoints and the watchdog: a trainer waiting
            // for data is alive, only a stuck one is not.
            guard examples.count >= 2 else {
                if limits.once && sourcesDone {
                    state.unlock()
                    return
                }
                _ = state.wait(until: Date().addingTimeInterval(1))
                state.unlock()
                maybeCheckpoint()
                idlePing()
                continue
            }
            state.unlock()
            train(on: examples)
        }
    }

    /// A batch from the replay buffer (kind mix, reuse bound); the caller holds the lock.
    private func drawBatch() -> [TrainingExample] {
        buffer.sample(config.batch, mix: config.pairing.mix, rng: &rng, maxUses: config.maxReuse)
    }

    private var reachedMaxSteps: Bool { limits.maxSteps.map { learner.step >= $0 } ?? false }

    /// Files wait while this many examples are still untrained; lockstep trains until fewer are.
    private var backpressureUnseen: Int { 4 * config.batch }

    /// One optimizer step on `examples`, with its logging, status and periodic checkpoint.
    private func train(on examples: [TrainingExample]) {
        let batch = makeBatch(examples)
        let report = learner.train(batch)
        if lossesFirst.count < 20 { lossesFirst.append(report.loss) }
        lossesLast.append(report.loss)
        if lossesLast.count > 20 { lossesLast.removeFirst() }
        pairsTrained += examples.count
        if report.skipped {
            logger.warning("update skipped: not finite", metadata: [
                "step": "\(report.step)", "what": "\(report.nonFinite ?? "?")",
                "image_loss": "\(report.imageLoss ?? .nan)", "audio_loss": "\(report.audioLoss ?? .nan)",
            ])
        }
        if report.step % 20 == 0 {
            logger.info("step", metadata: [
                "step": "\(report.step)", "loss": "\(report.loss)", "accuracy": "\(report.health?.accuracy ?? .nan)",
                "embedding_std": "\(report.health?.embeddingStd ?? .nan)", "lr": "\(report.learningRate)",
            ])
        }
        reportStatus(loss: report.loss)
        maybeCheckpoint()
        // Sources stop at once: lockstep must not read past the position the checkpoint records.
        if reachedMaxSteps { requestStop() }
    }

    // MARK: - Lockstep (training.deterministic)

    /// The deterministic run: scan, read each settled file in path order (a file being resumed
    /// first), training as the buffer fills; with no file left, train on what the buffer holds,
    /// then finish (`--once`) or wait for new files.
    private func lockstepLoop() {
        var seen: [String: (size: Int64, mtime: Double, since: Date)] = [:]
        let events = DirectoryEvents()
        var lastScan = Date.distantPast
        while !isStopping && !reachedMaxSteps {
            if Date().timeIntervalSince(lastScan) >= config.pollInterval {
                for dir in config.watch {
                    events.watch(dir)
                    scan(directory: dir, seen: &seen, events: events)
                }
                lastScan = Date()
            }
            if let url = takeNextFile() {
                process(file: url)
                lastScan = .distantPast
                continue
            }
            let examples = state.withLock { buffer.available(maxUses: config.maxReuse) >= 2 ? drawBatch() : nil }
            if let examples, examples.count >= 2 {
                train(on: examples)
                continue
            }
            if limits.once && !state.withLock({ hasUnsettled(seen) }) { break }
            _ = events.wait(seconds: limits.once ? 0.2 : min(config.pollInterval, 1))
            maybeCheckpoint()
            idlePing()
            lastScan = .distantPast
        }
    }

    /// The file to read next: one being resumed, else the one with the fewest epochs done, then in
    /// path order (epochs go round the corpus).
    private func takeNextFile() -> URL? {
        state.withLock {
            guard !pendingFiles.isEmpty else { return nil }
            let keys = pendingFiles.map { url in
                (resumed: resumeProgress[url.path] == nil ? 1 : 0, epochs: ledger.entry(url.path).map { $0.status == "ok" ? $0.epochs : 0 } ?? 0, path: url.path)
            }
            let i = keys.indices.min { keys[$0] < keys[$1] }!
            return pendingFiles.remove(at: i)
        }
    }

    /// Lockstep's stand-in for backpressure: train while the file would have to wait.
    private func trainWhileBackpressured() {
        while !isStopping && !reachedMaxSteps {
            let examples = state.withLock { buffer.unseen >= backpressureUnseen ? drawBatch() : nil }
            guard let examples, examples.count >= 2 else { return }
            train(on: examples)
        }
    }

    private var lastIdlePing = Date.distantPast

    private func idlePing() {
        guard let notifier, let interval = notifier.watchdogInterval, Date().timeIntervalSince(lastIdlePing) >= min(interval, 5) else { return }
        notifier.watchdog()
        notifier.status("step \(learner.step), waiting for new data")
        lastIdlePing = Date()
    }

    private func maybeCheckpoint() {
        let due = state.withLock { !checkpointInFlight && Date() >= nextCheckpointDue }
        if due { checkpoint(wait: false) }
    }

    /// sd_notify STATUS each few seconds; WATCHDOG only while steps are advancing.
    private func reportStatus(loss: Float) {
        guard let notifier else { return }
        let now = Date()
        let elapsed = now.timeIntervalSince(lastStatusTime)
        if let interval = notifier.watchdogInterval, elapsed >= min(interval, 5) || lastWatchdogStep < 0 {
            if learner.step > lastWatchdogStep { notifier.watchdog() }
            lastWatchdogStep = learner.step
        }
        if elapsed >= 2 {
            let rate = Double(pairsTrained - lastStatusPairs) / elapsed
            notifier.status("step \(learner.step), \(Int(rate)) pairs/s, loss \(String(format: "%.3f", loss))")
            lastStatusTime = now
            lastStatusPairs = pairsTrained
        }
    }

    /// Augmented tensors for one step: image pairs for the video objective, audio-video pairs for
    /// the cross-modal one (log-mel transposed to [bands, frames, 1]).
    private func makeBatch(_ examples: [TrainingExample]) -> Learner.Batch {
        let aug = config.pairing.image, audioAug = config.pairing.audio
        let s = aug.outputSize
        var anchors: [Float] = [], positives: [Float] = [], imageOrigins: [SampleOrigin] = []
        var frames: [Float] = [], mels: [Float] = [], audioOrigins: [SampleOrigin] = []
        var melShape: (bands: Int, frames: Int)?
        for e in examples {
            if e.kind == .audioVideo, let mel = e.audio {
                if melShape == nil { melShape = (mel.bands, mel.frames) }
                guard melShape! == (mel.bands, mel.frames) else { continue }
                frames += aug.apply(e.anchor, rng: &rng)
                let m = audioAug.apply(mel, rng: &rng)
                for b in 0..<mel.bands { for t in 0..<mel.frames { mels.append(m[t * mel.bands + b]) } }
                audioOrigins.append(e.origin)
            } else if let p = e.positive {
                anchors += aug.apply(e.anchor, rng: &rng)
                positives += aug.apply(p, rng: &rng)
                imageOrigins.append(e.origin)
            }
        }
        var batch = Learner.Batch()
        if imageOrigins.count >= 2 {
            batch.anchors = Tensor(shape: [imageOrigins.count, s, s, 3], storage: anchors)
            batch.positives = Tensor(shape: [imageOrigins.count, s, s, 3], storage: positives)
            batch.imageOrigins = imageOrigins
        }
        if let shape = melShape, audioOrigins.count >= 2 {
            batch.frames = Tensor(shape: [audioOrigins.count, s, s, 3], storage: frames)
            batch.mels = Tensor(shape: [audioOrigins.count, shape.bands, shape.frames, 1], storage: mels)
            batch.audioOrigins = audioOrigins
        }
        return batch
    }

    // MARK: - Sources

    private func decodeOptions(live: Bool) -> DecodeOptions {
        var o = DecodeOptions()
        o.video = config.videoOptions
        o.audio = AudioOptions(sampleRate: config.sampleRate, chunkSamples: config.sampleRate / 10)
        o.decoderThreads = config.decoderThreads
        o.ioTimeout = config.liveTimeout
        o.fileTimeout = config.fileTimeout
        return o
    }

    /// Hands examples to the replay buffer and records the file position they came from, under
    /// one lock so a checkpoint never sees one without the other. Files wait while too many are
    /// still untrained (backpressure: nothing from a file is lost); live sources never wait.
    private func deliver(_ examples: [TrainingExample], waitForRoom: Bool, position: (path: String, progress: FileProgress)? = nil) {
        state.lock()
        defer { state.unlock() }
        if let position { progress[position.path] = position.progress }
        guard !examples.isEmpty else { return }
        if waitForRoom {
            while !stopping && buffer.unseen >= backpressureUnseen { state.wait() }
        }
        for e in examples {
            buffer.insert(e)
            switch e.kind {
            case .temporal: summaryPairs.temporal += 1
            case .tracked: summaryPairs.tracked += 1
            case .audioVideo: summaryPairs.audio_video += 1
            }
        }
        state.broadcast()
    }

    private var isStopping: Bool { state.withLock { stopping } }

    private func scanLoop() {
        var seen: [String: (size: Int64, mtime: Double, since: Date)] = [:]
        let events = DirectoryEvents()
        while !isStopping {
            for dir in config.watch {
                events.watch(dir)
                scan(directory: dir, seen: &seen, events: events)
            }
            // With --once, wait until every file present at start has settled and been queued.
            state.lock()
            if limits.once && !hasUnsettled(seen) {
                scannedOnce = true
                state.broadcast()
                state.unlock()
                return
            }
            if !limits.once { scannedOnce = true }
            state.unlock()
            if limits.once {
                usleep(200_000)
            } else {
                // inotify wakes us as soon as a file appears or is finished; the timeout is the
                // polling fallback (and lets settling files be re-checked).
                _ = events.wait(seconds: min(config.pollInterval, max(0.2, config.settleSeconds)))
            }
        }
    }

    /// Whether a file seen in a watched directory is still settling (not yet taken, not done);
    /// the caller holds the lock.
    private func hasUnsettled(_ seen: [String: (size: Int64, mtime: Double, since: Date)]) -> Bool {
        seen.contains { path, info in
            !queuedPaths.contains(path) && retries[path] == nil && !ledger.isSettled(path, size: info.size, mtime: info.mtime, epochs: config.epochs)
        }
    }

    private func scan(directory: String, seen: inout [String: (size: Int64, mtime: Double, since: Date)], events: DirectoryEvents) {
        switch DirectoryWalker.rootState(directory) {
        case .directory:
            if state.withLock({ missingRoots.remove(directory) }) != nil {
                logger.notice("watched directory is there now", metadata: ["path": "\(directory)"])
            }
        case let problem:
            // Warned once; rescanned every poll, so the directory is taken as soon as it appears.
            if state.withLock({ missingRoots.insert(directory).inserted }) {
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
        let (files, problems) = DirectoryWalker.walk(directory) { events.watch($0) }
        for problem in problems {
            switch problem {
            case .brokenLink(let path):
                // Dangling links and loops cannot be opened: recorded once.
                if ledger.entry(path) == nil { markBad(path, size: 0, mtime: 0, reason: "broken symbolic link or link loop") }
            case .unreadable(let path, let reason):
                if state.withLock({ missingRoots.insert(path).inserted }) {
                    logger.warning("directory below a watched one cannot be read", metadata: ["path": "\(path)", "reason": "\(reason)"])
                }
            }
        }
        let now = Date()
        for file in files {
            let path = file.path, size = file.size, mtime = file.mtime
            if ledger.isSettled(path, size: size, mtime: mtime, epochs: config.epochs) { continue }
            if let retry = state.withLock({ retries[path] }), retry.at > now, seen[path].map({ $0.size == size && $0.mtime == mtime }) ?? true {
                continue  // a transient failure: retried when its delay is up, or once the file changes
            }
            if let previous = seen[path], previous.size == size, previous.mtime == mtime {
                // Taken only once it has stopped growing for settle_seconds (or is already old).
                let stable = now.timeIntervalSince(previous.since) >= config.settleSeconds
                    || now.timeIntervalSince1970 - mtime >= config.settleSeconds
                if stable { enqueue(path) }
            } else {
                seen[path] = (size, mtime, now)
                if now.timeIntervalSince1970 - mtime >= config.settleSeconds { enqueue(path) }
            }
        }
    }

    private func enqueue(_ path: String) {
        state.lock()
        defer { state.unlock() }
        guard !queuedPaths.contains(path) else { return }
        queuedPaths.insert(path)
        pendingFiles.append(URL(fileURLWithPath: path))
        state.broadcast()
    }

    private func markBad(_ path: String, size: Int64, mtime: Double, reason: String) {
        logger.warning("bad file skipped", metadata: ["path": "\(path)", "reason": "\(reason)"])
        do { try ledger.record(Ledger.Entry(path: path, size: size, mtime: mtime, status: "bad", epochs: 0, reason: reason)) } catch {
            logger.error("ledger not updated", metadata: ["error": "\(error)"])
        }
        state.withLock { summaryFiles.bad += 1 }
    }

    /// A file that failed for a reason that may pass (permission, I/O): not marked bad; tried again
    /// after a doubling delay (sooner if it changes). `--once` does not wait for it.
    private func scheduleRetry(_ path: String, error: DecodeError) {
        let delay = state.withLock { () -> Double in
            let delay = retries[path].map { min(config.retryMax, $0.delay * 2) } ?? config.retryInitial
            retries[path] = (limits.once ? .distantFuture : Date().addingTimeInterval(delay), delay)
            queuedPaths.remove(path)
            summaryFiles.failed += 1
            return delay
        }
        logger.warning("file failed; will retry", metadata: [
            "path": "\(path)", "kind": "\(error.kind.rawValue)", "error": "\(error)",
            "retry_in_seconds": "\(limits.once ? "never (--once)" : String(format: "%.0f", delay))",
        ])
    }

    private func fileLoop() {
        while true {
            state.lock()
            while !stopping && pendingFiles.isEmpty { state.wait() }
            if stopping { state.unlock(); return }
            let url = pendingFiles.removeFirst()
            fileWorkerBusy = true
            state.unlock()
            process(file: url)
            state.lock()
            fileWorkerBusy = false
            state.broadcast()
            state.unlock()
        }
    }

    /// Reads one epoch of a file (the next one the ledger or the checkpoint says is due), then puts
    /// the file back at the end of the queue while epochs remain: epochs go round the corpus, so
    /// consecutive batches mix files instead of repeating one clip `epochs` times in a row.
    private func process(file url: URL) {
        let path = url.path
        let resumeAt = state.withLock { resumeProgress.removeValue(forKey: path) }
        let source = Self.sourceID(path)
        let info = DirectoryWalker.fileInfo(path)
        let size = info?.size ?? 0, mtime = info?.mtime ?? 0
        let done = ledger.epochsDone(path, size: size, mtime: mtime)
        let epoch = max(done, resumeAt?.epoch ?? 0)
        guard epoch < config.epochs else {
            finish(path)
            return
        }
        // Each epoch is its own stretch of timeline: nothing pairs across two readings.
        var stage = PairingStage(source: source, config: config.pairing, seed: UInt64(config.seed) &+ UInt64(source) &* 7919 &+ UInt64(epoch))
        var mel = DecodeBridge.MelStream(spectrogram: try! LogMelSpectrogram(options: config.logMelOptions), source: source)
        // Items the checkpoint counts as consumed are paired again (rebuilding the stage) but
        // not delivered: their examples are in the restored buffer or already trained on.
        let replayUntil = resumeAt.map { $0.epoch == epoch ? $0.items : 0 } ?? 0
        var items = 0
        var decodedAnything = false
        do {
            let decoder = try MediaDecoder(path, options: decodeOptions(live: false))
            while let item = try decoder.next() {
                if isStopping { return }
                items += 1
                let replaying = items <= replayUntil
                var examples: [TrainingExample] = []
                switch item {
                case .video(let f):
                    decodedAnything = true
                    var frame = DecodeBridge.frame(f, source: source)
                    frame.segment += epoch * 1_000
                    examples = stage.ingest(frame)
                case .audio(let chunk):
                    decodedAnything = true
                    if var m = mel.append(chunk) {
                        m.segment += epoch * 1_000
                        stage.ingest(m)
                    }
                case .segmentBoundary:
                    break
                }
                if replaying && items < replayUntil { continue }
                let position = (path, FileProgress(epoch: epoch, items: items))
                deliver(replaying ? [] : examples, waitForRoom: !config.deterministic, position: position)
                if config.deterministic { trainWhileBackpressured() }
            }
        } catch {
            if !decodedAnything {
                if error.isTransient {
                    scheduleRetry(path, error: error)
                } else {
                    markBad(path, size: size, mtime: mtime, reason: error.description)
                }
                state.withLock { _ = progress.removeValue(forKey: path) }
                return
            }
            logger.warning("file ended with an error; what decoded was used", metadata: ["path": "\(path)", "error": "\(error)"])
        }
        state.withLock { _ = retries.removeValue(forKey: path) }
        // Written to the ledger file once a checkpoint covers this epoch.
        ledger.stage(Ledger.Entry(path: path, size: size, mtime: mtime, status: "ok", epochs: epoch + 1))
        if epoch + 1 < config.epochs {
            // The ledger now holds the epoch count; progress is only for a file read part way.
            state.withLock {
                _ = progress.removeValue(forKey: path)
                pendingFiles.append(url)
                state.broadcast()
            }
        } else {
            finish(path)
        }
    }

    private func finish(_ path: String) {
        state.withLock {
            _ = progress.removeValue(forKey: path)
            summaryFiles.ok += 1
        }
        logger.info("file done", metadata: ["path": "\(path)", "epochs": "\(config.epochs)"])
    }

    /// A source's id: a hash of its path or URL (24 bits, so checkpoints store it exactly as float32),
    /// the same in every run and every epoch. Masking and batch spreading use it; a rare collision
    /// only merges two sources.
    static func sourceID(_ key: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01b3
        }
        return Int(h & 0xFF_FFFF)
    }

    // MARK: - Live sources

    /// A bounded hand-off from a live reader to its pairing thread that drops the oldest frames
    /// instead of making the reader wait.
    private final class LiveQueue: @unchecked Sendable {
        private let condition = NSCondition()
        private var items: [MediaItem] = []
        private var closed = false
        let capacity: Int
        private(set) var dropped = 0

        init(capacity: Int) { self.capacity = capacity }

        func push(_ item: MediaItem) -> Int {
            condition.lock()
            defer { condition.unlock() }
            var droppedNow = 0
            if case .video = item, items.filter({ if case .video = $0 { return true } else { return false } }).count >= capacity,
                let oldest = items.firstIndex(where: { if case .video = $0 { return true } else { return false } })
            {
                items.remove(at: oldest)
                dropped += 1
                droppedNow = 1
            }
            items.append(item)
            condition.signal()
            return droppedNow
        }

        func pop() -> MediaItem? {
            condition.lock()
            defer { condition.unlock() }
            while items.isEmpty && !closed { condition.wait() }
            return items.isEmpty ? nil : items.removeFirst()
        }

        func close() {
            condition.lock()
            closed = true
            condition.broadcast()
            condition.unlock()
        }
    }

    private func startLiveSource(_ location: String, index: Int) {
        let source = Self.sourceID(location)
        let queue = LiveQueue(capacity: config.liveQueueFrames)
        startThread(name: "live-\(index)") { self.liveReader(location, queue: queue) }
        startThread(name: "live-pairing-\(index)") { self.livePairing(queue: queue, source: source) }
    }

    private func liveReader(_ location: String, queue: LiveQueue) {
        var delay = config.backoffInitial
        var connection = 0
        while !isStopping {
            let interrupt = DecodeInterrupt()
            state.withLock { liveInterrupts.append(interrupt) }
            let connectedAt = Date()
            var gotFrames = false
            do {
                let decoder = try MediaDecoder(location, options: decodeOptions(live: true), interrupt: interrupt)
                logger.info("live source connected", metadata: ["url": "\(MediaSource.redacted(location))", "connection": "\(connection)"])
                state.withLock { liveConnected += 1 }
                defer { state.withLock { liveConnected -= 1 } }
                // A stall (no frame for stall_seconds) forces a reconnect.
                let watchdog = DispatchSource.makeTimerSource(queue: .global())
                let lastFrame = LockedDate()
                watchdog.schedule(deadline: .now() + 1, repeating: 1)
                watchdog.setEventHandler {
                    if Date().timeIntervalSince(lastFrame.value) > self.config.stallSeconds { interrupt.interrupt() }
                }
                watchdog.resume()
                defer { watchdog.cancel() }
                while let item = try decoder.next() {
                    var shifted = item
                    // Each connection is its own stretch of timeline.
                    switch item {
                    case .video(var f):
                        f.segment += connection * 1_000
                        shifted = .video(f)
                        lastFrame.value = Date()
                        gotFrames = true
                    case .audio(var c):
                        c.segment += connection * 1_000
                        shifted = .audio(c)
                    case .segmentBoundary:
                        continue
                    }
                    let dropped = queue.push(shifted)
                    if dropped > 0 { state.withLock { droppedFrames += dropped } }
                }
                logger.warning("live source ended", metadata: ["url": "\(MediaSource.redacted(location))"])
            } catch {
                if isStopping { break }
                logger.warning("live source failed", metadata: ["url": "\(MediaSource.redacted(location))", "error": "\(error)"])
            }
            state.withLock { liveInterrupts.removeAll { $0 === interrupt } }
            connection += 1
            if gotFrames && Date().timeIntervalSince(connectedAt) >= config.backoffResetAfter { delay = config.backoffInitial }
            // Exponential backoff with ±25 % jitter, interruptible by a stop.
            let jittered = delay * Double(0.75 + 0.5 * Float(UInt32.random(in: 0...1000)) / 1000)
            logger.info("reconnecting", metadata: ["url": "\(MediaSource.redacted(location))", "in_seconds": "\(String(format: "%.1f", jittered))"])
            state.lock()
            if !stopping { _ = state.wait(until: Date().addingTimeInterval(jittered)) }
            state.unlock()
            delay = min(config.backoffMax, delay * 2)
        }
        queue.close()
    }

    private func livePairing(queue: LiveQueue, source: Int) {
        var stage = PairingStage(source: source, config: config.pairing, seed: UInt64(config.seed) &+ UInt64(source) &* 7919)
        var mel = DecodeBridge.MelStream(spectrogram: try! LogMelSpectrogram(options: config.logMelOptions), source: source)
        while let item = queue.pop() {
            switch item {
            case .video(let f): deliver(stage.ingest(DecodeBridge.frame(f, source: source)), waitForRoom: false)
            case .audio(let c): if let m = mel.append(c) { stage.ingest(m) }
            case .segmentBoundary: break
            }
        }
    }
}

/// A date shared between a reader and its stall timer.
final class LockedDate: @unchecked Sendable {
    private let lock = NSLock()
    private var date = Date()
    var value: Date {
        get { lock.withLock { date } }
        set { lock.withLock { date = newValue } }
    }
}
