import DaemonRuntime
import ArgumentParser
import Foundation
import Metrics
import Prometheus
import Logging
import StreamDecode
import TemporalContrast

/// `ssl-daemon run`: the long-running service.
///
/// A synchronous command that blocks its thread while the service group runs in a task: with an
/// async root command every subcommand ran off the main thread, and the training benchmark lost
/// 28 % at 1 thread (measured: 720 vs 992 pairs/s), so the root stays synchronous.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Learn continuously from watched directories and live streams, checkpointing as it goes.",
        discussion: """
            Settings come from --config (TOML; see --print-config for every key and default), then flags.
            With no source configured it runs once over the bundled samples/clips with its state in ./state.
            At exit the last line of stdout is a JSON summary.
            """
    )

    @Option(help: "TOML config file.")
    var config: String?

    @Option(help: "Directory to learn from (repeatable); files already there and new ones as they arrive.")
    var watch: [String] = []

    @Option(help: "Live source URL (udp, tcp, rtsp, rtmp, http/hls, srt) or - for stdin (repeatable).")
    var stream: [String] = []

    @Option(help: "Directory for checkpoints and the ledger.")
    var stateDir: String?

    // Numeric options parse their next argument unconditionally, so "-1" is a value to reject
    // with a clear message rather than an unknown flag.
    @Option(parsing: .unconditional, help: "Seconds between checkpoints.")
    var checkpointEvery: Double?

    @Option(parsing: .unconditional, help: "Stop when the step count (earlier runs included) reaches N, after a final checkpoint; 0 checkpoints the initial weights.")
    var maxSteps: Int?

    @Option(parsing: .unconditional, help: "Times each file is read before the ledger marks it done.")
    var epochs: Int?

    @Flag(help: "Process the files present in the watched directories once, checkpoint, and exit.")
    var once = false

    @Option(parsing: .unconditional, help: "Seed for weights, sampling and augmentation.")
    var seed: Int?

    @Flag(help: "Lockstep mode (training.deterministic): files only, in path order, decoded on the trainer thread, so a resumed run reproduces an uninterrupted one exactly.")
    var deterministic = false

    @Option(help: "Least severe level logged (log_level).")
    var logLevel: LogLevel?

    @Option(help: "HOST:PORT of the metrics, status page and health endpoint (http.listen); \"\" turns it off, port 0 picks a free one.")
    var httpListen: String?

    @Flag(help: "Print the effective config (defaults filled in) as TOML and exit.")
    var printConfig = false

    /// Flag-only checks; flags that set config keys are checked with the config's ranges.
    func validate() throws {
        if let maxSteps, maxSteps < 0 { throw ValidationError("--max-steps must be >= 0, got \(maxSteps)") }
    }

    /// The config file, then the flags; no sources at all means the bundled samples, once.
    func effectiveConfig() throws -> (DaemonConfig, RunLimits) {
        var c: DaemonConfig
        do { c = try config.map(DaemonConfig.load(file:)) ?? DaemonConfig() } catch { throw DaemonError.config(error) }
        if !watch.isEmpty { c.watch = watch }
        if !stream.isEmpty { c.streams = stream }
        if let stateDir { c.stateDir = stateDir }
        if let checkpointEvery { c.checkpointEvery = checkpointEvery }
        if let epochs { c.epochs = epochs }
        if let seed { c.seed = seed }
        if deterministic { c.deterministic = true }
        if let logLevel { c.logLevel = logLevel }
        if let httpListen { c.httpListen = httpListen }
        var limits = RunLimits(once: once, maxSteps: maxSteps)
        if c.watch.isEmpty && c.liveStreams.isEmpty {
            let samples = "samples/clips"
            guard FileManager.default.fileExists(atPath: samples) else {
                throw DaemonError.noSources
            }
            c.watch = [samples]
            limits.once = true
            if epochs == nil && config == nil { c.epochs = 4 }
        }
        do { try c.validate() } catch { throw DaemonError.config(error) }
        if limits.once {
            // A batch job over a directory that is not there would "succeed" having read nothing.
            for dir in c.watch {
                let state = DirectoryWalker.rootState(dir)
                if case .directory = state { continue }
                throw DaemonError.watchDirectory(dir, state)
            }
        }
        return (c, limits)
    }

    func run() throws {
        let command = self
        let outcome = RunOutcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await command.serve() } catch { outcome.error = error }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
    }

    private func serve() async throws {
        let signals = await ShutdownSignals.trap()
        let (config, limits): (DaemonConfig, RunLimits)
        do { (config, limits) = try effectiveConfig() } catch {
            FileHandle.standardError.write(Data("ssl-daemon run: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if printConfig {
            print(config.toml(), terminator: "")
            return
        }
        let level = config.logLevel.level
        LoggingSystem.bootstrap { label in
            var h = DaemonLogHandler(label: label)
            h.logLevel = level
            return h
        }
        FFmpegLogLevel.quiet.apply()
        let metrics = DaemonMetrics()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
        let logger = Logger(label: "ssl-daemon")
        let daemon: Daemon
        do {
            daemon = try Daemon(config: config, limits: limits, logger: logger, notifier: SystemdNotifier(), metrics: metrics)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        let summary = try await daemon.run(signals: signals)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let line = (try? encoder.encode(summary)).map { String(decoding: $0, as: UTF8.self) } ?? #"{"error":"summary could not be encoded"}"#
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
        if let failure = summary.checkpoint_error {
            logger.critical("final checkpoint not written: what was learned since the last durable checkpoint is lost", metadata: ["error": "\(failure)"])
            throw ExitCode(1)
        }
    }
}

final class RunOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Error?
    var error: Error? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

/// `ssl-daemon inspect CHECKPOINT|STATE_DIR`: a checkpoint's metadata as JSON.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a checkpoint's metadata (step, config, progress, ...) as JSON.")

    @Argument(help: "A checkpoint file, a state directory, or its checkpoints/ directory.")
    var path: String

    func run() throws {
        var reasons: [String] = []
        guard let url = CheckpointStore.resolve(URL(fileURLWithPath: path), report: { reasons.append($0) }) else {
            FileHandle.standardError.write(Data("ssl-daemon inspect: no valid checkpoint at \(path)\(reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; "))\n".utf8))
            throw ExitCode(1)
        }
        let file: SafeTensors
        do { file = try CheckpointStore.load(url) } catch {
            FileHandle.standardError.write(Data("ssl-daemon inspect: \(error)\n".utf8))
            throw ExitCode(1)
        }
        var object: [String: Any] = file.metadata
        // The replay buffer's bookkeeping is large and for the daemon only: report its size.
        if let entries = object.removeValue(forKey: "replay.entries") as? String,
            let list = (try? JSONSerialization.jsonObject(with: Data(entries.utf8)) as? [String: Any])?["entries"] as? [Any]
        {
            object["replay_entries"] = list.count
        }
        object["step"] = Int(file.metadata["step"] ?? "") ?? -1
        object["path"] = url.path
        object["tensors"] = file.names.count
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }
}
