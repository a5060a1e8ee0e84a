import Foundation
import ServiceLifecycle

/// Reports the daemon's state on its own timer, to systemd and to `status.json`:
/// - READY=1 once every service has started (it is the last one started, so the first one
///   stopped: STOPPING=1 goes out as soon as shutdown begins);
/// - STATUS= every 2 s (step, pairs/s, loss, or waiting for data);
/// - WATCHDOG=1 only while the trainer's heartbeat is fresh (it beats after each step and each
///   idle wake-up), so a stuck trainer stops the pings and systemd restarts the unit;
/// - `status.json` every second, written atomically (a reader never sees half a file).
struct StatusReporter: Service {
    let notifier: SystemdNotifier?
    let trainer: Trainer
    let statistics: RunStatistics
    let statusFile: URL
    /// What the daemon is doing ("training", "waiting", "stopping"), as this reporter last saw it.
    let phase: Shared<String>
    let board: SignalBoard
    let status: @Sendable () -> RunStatus
    /// `run --once`: a progress bar of the files on a terminal.
    let showsProgress: Bool

    func run() async throws {
        notifier?.ready()
        let trainer = self.trainer, statistics = self.statistics, notifier = self.notifier, board = self.board
        let write: @Sendable (String) -> Void = { [statusFile, status, phase] state in
            phase.value = state
            Self.write(status(), to: statusFile)
        }
        try? await cancelWhenGracefulShutdown {
            let watchdogEvery = notifier?.watchdogInterval.map { min($0, 5) }
            var lastPing = ContinuousClock.now - .seconds(3600)
            var lastStatus = ContinuousClock.now
            var lastFile = ContinuousClock.now - .seconds(3600)
            var lastPairs = statistics.pairsTrained.load(ordering: .relaxed)
            var lastStep = trainer.publishedStep.load(ordering: .relaxed)
            var training = false
            var bar = showsProgress ? ProgressBar("files", total: nil, unit: "files") : nil
            defer { bar?.finish() }
            while true {
                if bar != nil {
                    let files = statistics.files, pending = statistics.filesPending.load(ordering: .relaxed)
                    let done = files.ok + files.bad + files.failed
                    bar?.total = done + pending
                    bar?.advance(to: done)
                }
                let now = ContinuousClock.now
                if let notifier, let interval = notifier.watchdogInterval, let every = watchdogEvery,
                    now - lastPing >= .seconds(every), trainer.heartbeat.age < interval
                {
                    notifier.watchdog()
                    lastPing = now
                }
                let elapsed = now - lastStatus
                if elapsed >= .seconds(2) {
                    let pairs = statistics.pairsTrained.load(ordering: .relaxed)
                    let step = trainer.publishedStep.load(ordering: .relaxed)
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                    training = step != lastStep
                    let alarm = board.signals.collapse ? ", COLLAPSE ALARM" : ""
                    if training {
                        notifier?.status("step \(step), \(Int(Double(pairs - lastPairs) / seconds)) pairs/s, loss \(String(format: "%.3f", trainer.lastLoss))\(alarm)")
                    } else {
                        notifier?.status("step \(step), waiting for new data\(alarm)")
                    }
                    lastStatus = now
                    lastPairs = pairs
                    lastStep = step
                }
                if now - lastFile >= .seconds(1) {
                    write(training ? "training" : "waiting")
                    lastFile = now
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        notifier?.stopping()
        write("stopping")
    }

    /// Writes `status` next to `url` and renames it over `url`. Not fsynced: it describes the
    /// moment, and a crash leaves the previous one or none.
    static func write(_ status: RunStatus, to url: URL) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(status) else { return }
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        guard (try? data.write(to: temporary)) != nil else { return }
        _ = rename(temporary.path, url.path)
    }
}
