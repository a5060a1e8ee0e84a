import Foundation
import Glibc
import Prometheus
import Synchronization

/// The daemon's Prometheus metrics, in a swift-prometheus registry that swift-metrics is also
/// bootstrapped with. Names follow Prometheus conventions: an `ssl_` prefix, base units
/// (`_seconds`, `_bytes`), `_total` on counters; labels only take names from the configuration
/// (a pair kind, a loss term, `live-0`), never a path or a URL. Process metrics use the standard
/// `process_` names.
///
/// Most values are copied from one `RunStatus` when scraped (`refresh`), so a scrape sees one
/// consistent moment; counters advance by the difference from the previous scrape. The step
/// duration histogram is fed by the trainer at every step.
final class DaemonMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let stepDuration: DurationHistogram
    private let counters = Mutex<[String: Double]>([:])
    private let startTime = Date().timeIntervalSince1970

    init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        stepDuration = registry.makeDurationHistogram(
            descriptor: Self.name("step_duration", "seconds", "Wall time of one training step (batch assembly, forward, backward, update)"),
            buckets: [.milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                      .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10)])
        registry.makeGauge(descriptor: Self.name("build_info", "", "Always 1; labels give the version"), labels: [("version", BuildInfo.version)]).set(to: 1.0)
    }

    private static func name(_ base: String, _ unit: String, _ help: String, namespace: String? = "ssl") -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: namespace, metricName: base, unitName: unit, helpText: help)
    }

    private func gauge(_ base: String, _ unit: String = "", _ labels: [(String, String)] = [], _ help: String, _ value: Double?, namespace: String? = "ssl") {
        let g = registry.makeGauge(descriptor: Self.name(base, unit, help, namespace: namespace), labels: labels)
        g.set(to: value ?? .nan)
    }

    /// Advances a counter to `value` (a running total kept elsewhere).
    private func counter(_ base: String, _ labels: [(String, String)] = [], _ help: String, _ value: Int, namespace: String? = "ssl") {
        counter(base, labels, help, Double(value), namespace: namespace)
    }

    private func counter(_ base: String, _ labels: [(String, String)] = [], _ help: String, _ value: Double, namespace: String? = "ssl") {
        let descriptor = Self.name(base, "total", help, namespace: namespace)
        let c = registry.makeCounter(descriptor: descriptor, labels: labels)
        let key = descriptor.name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let delta = counters.withLock { seen -> Double in
            let d = value - (seen[key] ?? 0)
            if d > 0 { seen[key] = value }
            return d
        }
        if delta > 0 { c.increment(by: delta) }
    }

    /// Copies `status` into the registry and returns the text exposition (format 0.0.4).
    func scrape(_ status: RunStatus) -> [UInt8] {
        refresh(status)
        return registry.emitToBuffer()
    }

    private func refresh(_ s: RunStatus) {
        let t = s.training
        counter("steps", [], "Optimizer steps taken (earlier runs of this state directory included)", s.step)
        for (kind, trained, produced) in [("temporal", s.trained.temporal, s.pairs.temporal), ("tracked", s.trained.tracked, s.pairs.tracked),
                                          ("audio_video", s.trained.audio_video, s.pairs.audio_video)] {
            counter("examples_trained", [("kind", kind)], "Examples taken into training steps, by pair kind", trained)
            counter("examples_produced", [("kind", kind)], "Examples the pairing stage produced, by pair kind", produced)
        }
        for (term, value) in [("total", t.loss), ("image", t.image_loss), ("audio", t.audio_loss), ("chance", t.chance_loss)] {
            gauge("loss", "", [("term", term)], "Latest loss by term; term=\"chance\" is ln(K+1), the loss of a uniform guess", value.map(Double.init))
        }
        gauge("learning_rate", "", [], "Learning rate of the latest step", t.learning_rate.map(Double.init))
        gauge("contrastive_accuracy", "ratio", [], "Fraction of anchors whose positive has the top logit (latest step)", t.accuracy.map(Double.init))
        gauge("embedding_std", "ratio", [], "Std of the L2-normalised embeddings times sqrt(d): about 1 when healthy, near 0 when collapsed", t.std_ratio.map(Double.init))
        gauge("effective_rank", "", [], "RankMe effective rank of the latest embeddings window", t.effective_rank.map(Double.init))
        gauge("alignment", "", [], "Mean squared distance between positive embeddings (lower is better)", t.alignment.map(Double.init))
        gauge("uniformity", "", [], "log mean exp(-2 d^2) over batch pairs (lower is better)", t.uniformity.map(Double.init))
        gauge("collapse_alarm", "", [], "1 while the collapse alarm is raised", t.collapse ? 1 : 0)
        gauge("knn_accuracy", "ratio", [], "kNN monitor: leave-one-out weighted-kNN accuracy on the labelled folder", t.knn_accuracy.map(Double.init))
        gauge("key_queue_entries", "", [], "Keys in the MoCo queue", t.queue_entries.map(Double.init))
        gauge("key_queue_capacity", "", [], "Capacity of the MoCo queue", t.queue_capacity.map(Double.init))
        gauge("replay_buffer", "bytes", [], "Bytes held by the replay buffer", Double(s.buffer.bytes))
        gauge("replay_buffer_limit", "bytes", [], "The replay buffer's bound (pairing.buffer_bytes)", Double(s.buffer.byte_limit))
        gauge("replay_buffer_entries", "", [], "Examples held by the replay buffer", Double(s.buffer.entries))
        counter("replay_buffer_evictions", [], "Examples the replay buffer evicted as most redundant", s.buffer.evictions)
        counter("skipped_updates", [], "Updates skipped because the loss or a gradient was not finite", s.skipped_updates)
        counter("dropped_frames", [], "Frames all live sources dropped at their hand-off", s.dropped_frames)
        for (state, n) in [("ok", s.files.ok), ("bad", s.files.bad), ("failed", s.files.failed), ("pending", s.files.pending)] {
            gauge("files", "", [("state", state)], "Files by state: ok (learned), bad (undecodable), failed (will be retried), pending (queued or being read)", Double(n))
        }
        for live in s.live {
            let l = [("source", live.name)]
            gauge("source_up", "", l, "1 while the live source is connected", live.connected ? 1 : 0)
            counter("source_frames", l, "Frames the live source decoded", live.frames)
            counter("source_dropped_frames", l, "Frames the live source dropped at its hand-off", live.dropped_frames)
            counter("source_reconnects", l, "Reconnections of the live source", live.reconnects)
            gauge("source_last_frame_age", "seconds", l, "Seconds since the live source's last frame", live.last_frame_age_seconds)
            gauge("source_last_recovery", "seconds", l, "Seconds from losing the live source to its next frame, at the last recovery", live.last_recovery_seconds)
            gauge("source_failed_attempts", "", l, "Connection attempts in a row that brought no frame", Double(live.failed_attempts))
        }
        gauge("checkpoint_last_timestamp", "seconds", [], "When the last checkpoint became durable (Unix time)", s.last_checkpoint?.time)
        gauge("checkpoint_last_duration", "seconds", [], "How long writing the last checkpoint took", s.last_checkpoint?.seconds)
        counter("checkpoint_failures", [], "Checkpoint writes that failed (each is retried)", s.checkpoint_failures)
        gauge("trainer_heartbeat_age", "seconds", [], "Seconds since the trainer last stepped or woke up idle", s.heartbeat_age_seconds)
        let p = ProcessReading.now()
        counter("cpu_seconds", [], "Process user and system CPU time, seconds", p.cpuSeconds, namespace: "process")
        gauge("resident_memory", "bytes", [], "Resident set size", p.residentBytes, namespace: "process")
        gauge("virtual_memory", "bytes", [], "Virtual memory size", p.virtualBytes, namespace: "process")
        gauge("open_fds", "", [], "Open file descriptors", p.openFiles, namespace: "process")
        gauge("max_fds", "", [], "Limit of open file descriptors", p.maxFiles, namespace: "process")
        gauge("start_time", "seconds", [], "Process start time (Unix time)", startTime, namespace: "process")
    }
}

/// The process's own resource use, from /proc/self and getrusage(2).
struct ProcessReading {
    var cpuSeconds: Double
    var residentBytes: Double?
    var virtualBytes: Double?
    var openFiles: Double?
    var maxFiles: Double?

    static func now() -> ProcessReading {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        var reading = ProcessReading(cpuSeconds: cpu)
        // statm: size resident ... in pages.
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ").compactMap { Double($0) }
            let page = Double(sysconf(Int32(_SC_PAGESIZE)))
            if fields.count >= 2 {
                reading.virtualBytes = fields[0] * page
                reading.residentBytes = fields[1] * page
            }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") { reading.openFiles = Double(entries.count) }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { reading.maxFiles = Double(limit.rlim_cur) }
        return reading
    }
}

enum BuildInfo {
    static let version = "0.12.0"
}
