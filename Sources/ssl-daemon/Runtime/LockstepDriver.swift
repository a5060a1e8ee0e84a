import DaemonRuntime
import Foundation
import Synchronization

/// Deterministic mode (`training.deterministic`): the same watcher, file source and trainer, driven
/// on one thread. Files are read in lockstep order (a file being resumed first, then fewest epochs
/// done, then path order), and the trainer steps whenever the file would otherwise wait for room,
/// so a run is a pure function of its config and files, and resuming from a checkpoint
/// reproduces it exactly. With no file left it trains on what the buffer holds, then finishes
/// (`--once`) or waits for new files.
final class LockstepDriver: Sendable {
    private let config: DaemonConfig
    private let limits: RunLimits
    private let watcher: DirectoryWatcher
    private let files: FileSource
    private let trainer: Trainer
    private let exchange: ExampleExchange
    private let stopRequested = Atomic<Bool>(false)

    init(config: DaemonConfig, limits: RunLimits, watcher: DirectoryWatcher, files: FileSource, trainer: Trainer, exchange: ExampleExchange) {
        self.config = config
        self.limits = limits
        self.watcher = watcher
        self.files = files
        self.trainer = trainer
        self.exchange = exchange
    }

    func stop() {
        stopRequested.store(true, ordering: .relaxed)
        watcher.stop()
    }

    private var isDone: Bool { stopRequested.load(ordering: .relaxed) || trainer.reachedMaxSteps || trainer.diverged }

    func loop() {
        var lastScan = Date.distantPast
        while !isDone {
            if Date().timeIntervalSince(lastScan) >= config.pollInterval {
                watcher.scan()
                lastScan = Date()
            }
            if let url = files.takeNextOrdered() {
                // Stops reading at once at --max-steps: the final checkpoint must record the
                // position the last step saw, not one read past it.
                files.processInLockstep(url, cancelled: { self.isDone }, afterDelivery: trainWhileBackpressured)
                lastScan = .distantPast
                continue
            }
            if let examples = trainer.drawAvailable() {
                trainer.step(on: examples)
                continue
            }
            if limits.once && !watcher.hasUnsettled { break }
            watcher.waitForChange(seconds: limits.once ? 0.2 : min(config.pollInterval, 1))
            trainer.heartbeat.beat()
            trainer.maybeCheckpoint()
            lastScan = .distantPast
        }
    }

    /// Lockstep's stand-in for backpressure: train while the file would have to wait.
    private func trainWhileBackpressured() {
        while !isDone && exchange.isBackpressured {
            guard let examples = trainer.drawAvailable() else { return }
            trainer.step(on: examples)
        }
    }
}
