import DaemonRuntime
import Foundation
import Glibc
import Logging
import ServiceLifecycle
import StreamDecode
import Synchronization
import TemporalContrast

/// The JSON line printed at exit.
struct RunSummary: Encodable {
    struct Pairs: Encodable, Sendable { var temporal = 0, tracked = 0, audio_video = 0 }
    struct Files: Encodable, Sendable { var ok = 0, bad = 0, failed = 0 }
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

/// The running daemon: its services, built from the config, in start order. A `ServiceGroup`
/// shuts them down in reverse: the systemd reporter says STOPPING, the sources stop, the trainer
/// finishes its step, and the checkpoint service writes the final checkpoint last.
///
/// ```
///  DirectoryWatcher ─► FileSource ──┐
///                                   ├─► ExampleExchange ─► Trainer ─► CheckpointService
///  LiveSource (one per URL) ────────┘
/// ```
/// In deterministic mode a `LockstepDriver` runs the watcher, file source and trainer on one
/// thread instead of their three services.
final class Daemon: Sendable {
    let config: DaemonConfig
    private let logger: Logger
    /// Held for the life of the daemon: no second one may use this state directory.
    private let stateLock: StateDirectory
    private let statistics = RunStatistics()
    private let checkpoints: CheckpointService
    private let trainer: Trainer
    private let services: [any Service]

    init(config configured: DaemonConfig, limits: RunLimits, logger: Logger, notifier: SystemdNotifier?, metrics: DaemonMetrics) throws(DaemonError) {
        // Under mpirun: this rank's own state directory and endpoint port; rank 0 alone writes
        // checkpoints and TensorBoard events.
        let distributed = MPICollective.launched ? DistributedRun(config: configured, logger: logger) : nil
        var config = configured
        if let distributed {
            config.stateDir = distributed.stateDirectory(configured.stateDir)
            config.httpListen = distributed.listen(configured.httpListen)
            if distributed.rank != 0 { config.tensorboard = false }
            if let stream = config.liveStreams.first(where: { $0.rank >= distributed.size }) {
                distributed.fail("stream '\(stream.name)' is assigned to rank \(stream.rank), but the job has \(distributed.size) ranks", logger: logger)
            }
            if config.deterministic { distributed.fail("training.deterministic works in one process only, not under mpirun", logger: logger) }
        }
        self.config = config
        self.logger = logger
        do { stateLock = try StateDirectory(path: config.stateDir) } catch { throw .stateDirectory(error) }
        let ledger: Ledger
        do { ledger = try Ledger(stateDirectory: stateLock.url) } catch { throw .ledger(error) }
        checkpoints = CheckpointService(stateDirectory: stateLock.url, ledger: ledger, config: config, logger: logger, statistics: statistics,
                                        writes: (distributed?.rank ?? 0) == 0)
        // Before the learner exists: its convolution layers take the engine when they are made.
        ComputeThreads.configure(config.computeThreads, convolutions: config.convolution)
        let learner = Learner(config: config.learnerConfig)
        var resumed = (distributed?.rank ?? 0) == 0 ? try checkpoints.resume(into: learner, stateDirectory: stateLock.url) : ResumedState()
        if let distributed {
            let start = distributed.shareStart(learner, start: .init(resumedStep: resumed.checkpoint == nil ? nil : learner.step, progress: resumed.progress), logger: logger)
            if distributed.rank != 0 {
                checkpoints.trustLedger(upToStep: start.resumedStep)
                resumed.progress = start.progress
                resumed.rng = RandomSource(seed: UInt64(config.seed) &+ 0x5EED &+ UInt64(distributed.rank))
                logger.info("rank started from rank 0's state", metadata: ["rank": "\(distributed.rank)", "ranks": "\(distributed.size)", "step": "\(learner.step)"])
            }
        }
        let exchange = ExampleExchange(
            buffer: resumed.buffer ?? ReplayBuffer(byteLimit: config.pairing.bufferBytes, policy: config.pairing.bufferPolicy), progress: resumed.progress,
            batch: config.batch, maxUses: config.maxReuse, replayRatio: config.replayRatio, lookahead: 4 * config.batch, prefill: config.prefill,
            statistics: statistics)
        let checkpoints = self.checkpoints, statistics = self.statistics
        var tensorboard: TensorBoardWriter?
        if config.tensorboard {
            do { tensorboard = try TensorBoardWriter(directory: stateLock.url.appendingPathComponent("tensorboard"), logger: logger) } catch {
                logger.error("TensorBoard events not written (training goes on)", metadata: ["error": "\(error)"])
            }
        }
        let board = SignalBoard(historyCapacity: config.historyPoints, tensorboard: tensorboard,
                                recordStepDuration: { [histogram = metrics.stepDuration] in histogram.record($0) })
        let labelled = config.labelled.isEmpty ? nil : LabelledSet(root: config.labelled, config: config, logger: logger)
        let observer = TrainingObserver(config: config, board: board, statistics: statistics, labelled: labelled, logger: logger)
        let trainer = Trainer(
            learner: learner, rng: resumed.rng ?? RandomSource(seed: UInt64(config.seed) &+ 0x5EED), config: config, limits: limits,
            exchange: exchange, checkpoints: checkpoints, statistics: statistics, observer: observer, distributed: distributed, logger: logger)
        checkpoints.setFinalSnapshot { trainer.diverged ? nil : trainer.snapshot(includeBuffer: true) }

        let group = Shared<ServiceGroup?>(nil)
        let requestShutdown: @Sendable () async -> Void = { await group.value?.triggerGracefulShutdown() }
        var services: [any Service] = [checkpoints]
        if let tensorboard { services.append(TensorBoardService(writer: tensorboard)) }
        // The endpoint starts before the trainer (and stops after it); it is made below, once
        // the status it serves can be built.
        let endpointPosition = services.count
        let files = config.watch.isEmpty ? nil : FileSource(
            config: config, limits: limits, ledger: ledger, exchange: exchange, resume: resumed.progress, statistics: statistics, logger: logger)
        let watcher = files.map { files in
            DirectoryWatcher(config: config, limits: limits, files: files, logger: logger, owns: { distributed?.owns($0) ?? true })
        }
        if config.deterministic, let files, let watcher {
            let driver = LockstepDriver(config: config, limits: limits, watcher: watcher, files: files, trainer: trainer, exchange: exchange)
            services.append(LockstepService(driver: driver, requestShutdown: requestShutdown))
        } else {
            services.append(TrainerService(trainer: trainer, requestShutdown: requestShutdown))
            if let files, let watcher {
                services.append(FileSourceService(files: files))
                services.append(DirectoryWatcherService(watcher: watcher))
            }
            for stream in config.liveStreams where distributed == nil || stream.rank == distributed?.rank {
                services.append(LiveSourceService(live: LiveSource(stream: stream, config: config, exchange: exchange, statistics: statistics, logger: logger)))
            }
        }
        let liveSources = services.compactMap { ($0 as? LiveSourceService)?.live }
        let phase = Shared("starting")
        let boundAddress = Shared<String?>(nil)
        let rates = RateMeter()
        let started = Date()
        let byteLimit = config.pairing.bufferBytes
        let statusOf: @Sendable (_ detail: Bool) -> RunStatus = { detail in
            let s = statistics, now = Date()
            let unix = now.timeIntervalSince1970
            return RunStatus(
                pid: getpid(), version: BuildInfo.version, state: phase.value, step: trainer.publishedStep.load(ordering: .relaxed),
                pairs_trained: s.pairsTrained.load(ordering: .relaxed),
                trained: .init(temporal: s.trained(.temporal), tracked: s.trained(.tracked), audio_video: s.trained(.audioVideo)),
                pairs: s.pairs, pairs_per_second: rates.rate("pairs", total: s.pairsTrained.load(ordering: .relaxed), now: unix),
                files: .init(ok: s.filesOK.load(ordering: .relaxed), bad: s.filesBad.load(ordering: .relaxed),
                             failed: s.filesFailed.load(ordering: .relaxed), pending: s.filesPending.load(ordering: .relaxed)),
                dropped_frames: s.droppedFrames.load(ordering: .relaxed), skipped_updates: s.skippedUpdates.load(ordering: .relaxed),
                checkpoint: checkpoints.lastCheckpoint?.path,
                last_checkpoint: checkpoints.lastCheckpoint.map { url in
                    let written = checkpoints.lastWritten
                    return .init(path: url.path, time: written?.at.timeIntervalSince1970, seconds: written?.seconds)
                },
                checkpoint_failures: s.checkpointFailures.load(ordering: .relaxed),
                buffer: .init(entries: s.bufferEntries.load(ordering: .relaxed), bytes: s.bufferBytes.load(ordering: .relaxed),
                              byte_limit: byteLimit, evictions: s.bufferEvictions.load(ordering: .relaxed)),
                training: board.signals,
                live: liveSources.map { live in
                    let l = live.statistics
                    let frames = l.frames.load(ordering: .relaxed), connections = l.connections.load(ordering: .relaxed)
                    let last = l.lastFrame
                    return RunStatus.Live(
                        name: live.name, url: MediaSource.redacted(live.location), connected: l.connected.load(ordering: .relaxed),
                        connections: connections, reconnects: max(0, connections - 1), frames: frames,
                        dropped_frames: l.droppedFrames.load(ordering: .relaxed), fps: rates.rate(live.name, total: frames, now: unix),
                        last_frame_age_seconds: last > 0 ? max(0, unix - last) : nil, last_error: l.lastError.withLock { $0 },
                        last_recovery_seconds: l.lastRecovery, failed_attempts: l.failedAttempts.load(ordering: .relaxed))
                },
                heartbeat_age_seconds: trainer.heartbeat.age, http: boundAddress.value,
                uptime_seconds: now.timeIntervalSince(started), updated: ISO8601DateFormatter().string(from: now),
                history: detail ? board.history : nil, retrieval: detail ? board.retrieval : nil)
        }
        if let listen = ListenAddress(config.httpListen) {
            services.insert(ObservabilityService(listen: listen, maxConnections: config.httpMaxConnections, stuckSeconds: config.stuckSeconds,
                                                 metrics: metrics, status: statusOf, boundAddress: boundAddress, logger: logger),
                            at: endpointPosition)
        }
        services.append(StatusReporter(notifier: notifier, trainer: trainer, statistics: statistics,
                                       statusFile: stateLock.url.appendingPathComponent("status.json"), phase: phase, board: board,
                                       status: { statusOf(false) }, showsProgress: limits.once))
        self.services = services
        self.trainer = trainer
        self.group = group
    }

    private let group: Shared<ServiceGroup?>

    /// Runs every service until the work is done (`--once`, `--max-steps`) or a signal, and
    /// returns the summary once the last service (the final checkpoint) has finished.
    func run(signals: ShutdownSignals) async throws -> RunSummary {
        ComputeThreads.configure(config.computeThreads, convolutions: config.convolution)
        logger.info("starting", metadata: [
            "watch": "\(config.watch)", "streams": "\(config.liveStreams.map { "\($0.name)=\(MediaSource.redacted($0.url))" })", "step": "\(trainer.learner.step)",
            "compute_threads": "\(config.computeThreads)", "convolution": "\(config.convolution.rawValue)", "blas_core": "\(BLASKernelSelection.description)",
        ])
        var groupConfig = ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
            logger: logger)
        // Signals are `signals`' (trapped before the group exists). The grace time running out
        // cancels the group, and a cancelled service exits at once (see `exitingOnCancel`).
        groupConfig.maximumGracefulShutdownDuration = .milliseconds(Int64(config.graceSeconds * 1000))
        let serviceGroup = ServiceGroup(configuration: groupConfig)
        group.value = serviceGroup
        await signals.attach(serviceGroup)
        // The group holds the services and they hold `group` (to ask for shutdown): let go of it
        // once it has run, so everything is freed when the daemon is.
        defer {
            group.value = nil
            signals.detach()
        }
        try await serviceGroup.run()
        return summary
    }

    var summary: RunSummary {
        let s = statistics, learner = trainer.learner
        let losses = trainer.lossSummary
        let finalWritten = checkpoints.finalWritten, diverged = trainer.diverged
        return RunSummary(
            steps: learner.step,
            pairs: s.pairs, files: s.files,
            loss_first: losses.first, loss_last: losses.last,
            checkpoint: checkpoints.lastCheckpoint?.path, dropped_frames: s.droppedFrames.load(ordering: .relaxed),
            skipped_updates: learner.skippedUpdates, pairs_trained: s.pairsTrained.load(ordering: .relaxed),
            checkpoint_failures: s.checkpointFailures.load(ordering: .relaxed),
            checkpoint_error: finalWritten ? nil : diverged ? "training diverged: no checkpoint written" : (checkpoints.lastError ?? "final checkpoint not written"),
            diverged: diverged)
    }
}

/// Lockstep mode's one thread, in the trainer's place in the group.
struct LockstepService: Service {
    let driver: LockstepDriver
    let requestShutdown: @Sendable () async -> Void

    func run() async throws {
        let driver = self.driver
        await runBlockingService(name: "trainer", stop: { driver.stop() }, finished: requestShutdown) { driver.loop() }
    }
}
