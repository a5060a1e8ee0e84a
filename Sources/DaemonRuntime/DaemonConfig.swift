import Glibc
import StreamDecode
import TemporalContrast

/// Every setting of `ssl-daemon run`, with its default. The TOML file, the flags and
/// `--print-config` all go through `DaemonConfig.fields`, so each key has one name, one default
/// and one valid range.
package struct DaemonConfig: Sendable, Equatable {
    // [sources]
    package var watch: [String] = []
    package var streams: [String] = []
    /// `[streams.NAME]` tables: live streams with options of their own, in file order.
    package var namedStreams: [StreamSettings] = []
    package var epochs = 1
    package var pollInterval = 2.0
    package var settleSeconds = 1.0
    package var liveTimeout = 10.0
    package var stallSeconds = 15.0
    package var backoffInitial = 1.0
    package var backoffMax = 60.0
    package var backoffResetAfter = 30.0
    package var liveQueueFrames = 250
    package var retryInitial = 30.0
    package var retryMax = 3600.0
    // [decode]
    package var size = 128
    package var fps = 10.0
    package var decoderThreads = 1
    package var sampleRate = 16_000
    package var melBands = 64
    package var fileTimeout = 60.0
    // [model]
    package var videoArchitecture: VideoArchitecture = .reference
    package var audioArchitecture: AudioArchitecture = .audio
    package var projectionHidden = 256
    package var embedding = 128
    // [objective]
    package var objective: LearnerConfig.Objective = .pirl
    package var temperature = 0.1
    package var queue = 4096
    package var keyMomentum = 0.99
    package var audioWeight = 1.0
    package var maskWindow = 2.0
    /// Each method's own settings, `objective.<key>` (`MethodKind.settings`).
    package var methodSettings = MethodSettings()
    // [optimizer]
    package var optimizer: LearnerConfig.OptimizerKind = .sgd
    package var learningRate = 0.03
    package var sgdMomentum = 0.9
    package var weightDecay = 1e-4
    package var warmupSteps = 200
    package var maxGradientNorm = 5.0
    // [training]
    package var batch = 64
    package var threads = 0
    package var convolution = ConvolutionEngine.onednn
    package var maxReuse = 8
    package var replayRatio = 4
    package var prefill = 0
    package var seed = 0
    package var deterministic = false
    // [checkpoint]
    package var checkpointEvery = 300.0
    package var keep = 3
    package var replayEvery = 6
    // [http]
    package var httpListen = "127.0.0.1:9741"
    package var httpMaxConnections = 256
    // [monitor]
    package var monitorEvery = 10
    package var rankEvery = 50
    package var rankWindow = 512
    package var collapseStdRatio = 0.02
    package var collapseRank = 1.5
    package var collapseSteps = 200
    package var stuckSeconds = 300.0
    package var tensorboard = true
    package var historyPoints = 2000
    package var retrievalEvery = 60.0
    package var labelled = ""
    package var knnEvery = 500
    package var knnK = 20
    package var knnTemperature = 0.07
    // [distributed]
    package var stepTimeout = 120.0
    package var checksumEvery = 100
    package var splitFiles = true
    // top level
    package var stateDir = "state"
    package var graceSeconds = 30.0
    package var logLevel: LogLevel = .info
    // [pairing], [pairing.mix], [pairing.image], [pairing.audio]
    package var pairing = PairingConfig()

    package init() {}

    /// Every live stream: those of `sources.streams` (named `live-0`, `live-1`, ... in order, all
    /// options at their defaults), then the `[streams.NAME]` tables.
    package var liveStreams: [StreamSettings] {
        streams.enumerated().map { StreamSettings(name: "live-\($0.offset)", url: $0.element) } + namedStreams
    }

    /// Compute threads: the configured count, or the cores left after the decoder threads.
    /// Deterministic runs default to one thread: results then do not depend on the machine.
    package var computeThreads: Int { threads > 0 ? threads : deterministic ? 1 : max(1, System.cores - decoderThreads) }
}

package enum System {
    package static var cores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Bytes this process may use: physical memory, or the cgroup's `memory.max` when lower
    /// (systemd's `MemoryMax=`).
    package static var memoryLimit: Int {
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) &* Int(sysconf(Int32(_SC_PAGESIZE)))
        var limit = physical > 0 ? physical : Int.max
        if let text = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
            let cgroup = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), cgroup > 0
        {
            limit = min(limit, cgroup)
        }
        return limit
    }
}

/// The values a setting accepts. Reals must also be finite (NaN and infinities are never valid).
package enum ValueRange: Sendable, CustomStringConvertible {
    case integers(ClosedRange<Int>)
    /// `lower`...`upper`, either end open (excluded) when its flag is set.
    case reals(lower: Double, lowerOpen: Bool = false, upper: Double, upperOpen: Bool = false)
    case choice([String])
    /// Any value of the key's type (strings, booleans, lists).
    case any

    package func contains(_ x: Double) -> Bool {
        switch self {
        case .integers(let r): return x.isFinite && x.rounded() == x && x >= Double(r.lowerBound) && x <= Double(r.upperBound)
        case .reals(let lower, let lowerOpen, let upper, let upperOpen):
            guard x.isFinite else { return false }
            return (lowerOpen ? x > lower : x >= lower) && (upperOpen ? x < upper : x <= upper)
        case .choice, .any: return true
        }
    }

    package var description: String {
        func number(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }
        switch self {
        case .integers(let r): return "\(r.lowerBound)...\(r.upperBound)"
        case .reals(let lower, let lowerOpen, let upper, let upperOpen):
            return "\(lowerOpen ? "(" : "[")\(number(lower)), \(number(upper))\(upperOpen ? ")" : "]")"
        case .choice(let values): return values.joined(separator: ", ")
        case .any: return "any"
        }
    }
}

/// One configurable key: its TOML path, documentation, valid values, and how to read and write it.
package struct ConfigField: Sendable {
    package enum Kind: Sendable {
        case int(WritableKeyPath<DaemonConfig, Int> & Sendable)
        case double(WritableKeyPath<DaemonConfig, Double> & Sendable)
        case float(WritableKeyPath<DaemonConfig, Float> & Sendable)
        case string(WritableKeyPath<DaemonConfig, String> & Sendable)
        case bool(WritableKeyPath<DaemonConfig, Bool> & Sendable)
        case strings(WritableKeyPath<DaemonConfig, [String]> & Sendable)
        /// One of a fixed set of values (an enum; see `ConfigChoice`).
        case choice(Choice)
        /// A method's own setting (`MethodKind.settings`), kept in `methodSettings` under its key.
        /// (Not a key path: a subscript key path is made at run time, and LeakSanitizer cannot see
        /// the static table holding it.)
        case method(key: String, integer: Bool)

        static func choice<E: ConfigChoice>(_ path: WritableKeyPath<DaemonConfig, E> & Sendable) -> Kind { .choice(.of(path)) }
    }
    package let key: String
    package let kind: Kind
    package let help: String
    package let range: ValueRange
    /// The command-line flag that sets it too, if any (named in errors).
    package let flag: String?

    init(_ key: String, _ kind: Kind, _ range: ValueRange = .any, flag: String? = nil, help: String) {
        self.key = key
        self.kind = kind
        self.help = help
        if case .choice(let c) = kind { self.range = .choice(c.values) } else { self.range = range }
        self.flag = flag
    }

    /// Its value in `config` as a number (nil for strings, booleans and lists).
    func number(in config: DaemonConfig) -> Double? {
        switch kind {
        case .int(let p): Double(config[keyPath: p])
        case .double(let p): config[keyPath: p]
        case .float(let p): Double(config[keyPath: p])
        case .method(let key, _): config.methodSettings[key]
        case .string, .bool, .strings, .choice: nil
        }
    }

    /// The value as written in TOML; with `redacted`, URLs among strings have their secrets
    /// masked (`MediaSource.redacted`; paths are unchanged).
    func formatted(in config: DaemonConfig, redacted: Bool = false) -> String {
        let shown: (String) -> String = redacted ? { MediaSource.redacted($0) } : { $0 }
        return switch kind {
        case .int(let p): String(config[keyPath: p])
        case .double(let p): DaemonConfig.number(config[keyPath: p])
        case .float(let p): DaemonConfig.number(config[keyPath: p])
        case .string(let p): DaemonConfig.quoted(shown(config[keyPath: p]))
        case .bool(let p): String(config[keyPath: p])
        case .strings(let p): "[" + config[keyPath: p].map { DaemonConfig.quoted(shown($0)) }.joined(separator: ", ") + "]"
        case .choice(let c): DaemonConfig.quoted(c.get(config))
        case .method(let key, let integer): integer ? String(config.methodSettings[integer: key]) : DaemonConfig.number(config.methodSettings[key])
        }
    }
}

extension DaemonConfig {
    private static let day = 86_400.0
    private static let probability = ValueRange.reals(lower: 0, upper: 1)

    package static let fields: [ConfigField] = [
        ConfigField("state_dir", .string(\.stateDir), flag: "--state-dir", help: "checkpoints, ledger and logs of this daemon"),
        ConfigField("grace_seconds", .double(\.graceSeconds), .reals(lower: 0, lowerOpen: true, upper: 3600), help: "longest graceful shutdown after SIGTERM/SIGINT"),
        ConfigField("log_level", .choice(\.logLevel), flag: "--log-level", help: "least severe level logged"),
        ConfigField("sources.watch", .strings(\.watch), flag: "--watch", help: "directories whose media files are learned from"),
        ConfigField("sources.streams", .strings(\.streams), flag: "--stream", help: "live URLs (udp, rtp, tcp, rtsp, rtmp, http/hls, srt) or - for stdin"),
        ConfigField("sources.epochs", .int(\.epochs), .integers(1...1_000_000_000), flag: "--epochs", help: "times each file is read before the ledger marks it done"),
        ConfigField("sources.poll_interval", .double(\.pollInterval), .reals(lower: 0, lowerOpen: true, upper: 3600), help: "seconds between scans of watched directories"),
        ConfigField("sources.settle_seconds", .double(\.settleSeconds), .reals(lower: 0, upper: 3600), help: "a file is taken once its size and mtime are unchanged this long"),
        ConfigField("sources.live_timeout", .double(\.liveTimeout), .reals(lower: 0, lowerOpen: true, upper: day), help: "longest single blocking read of a live source, seconds"),
        ConfigField("sources.stall_seconds", .double(\.stallSeconds), .reals(lower: 0, lowerOpen: true, upper: day), help: "no frame for this long forces a reconnect"),
        ConfigField("sources.backoff_initial", .double(\.backoffInitial), .reals(lower: 0, lowerOpen: true, upper: 3600), help: "first reconnect delay (doubles, with jitter), seconds"),
        ConfigField("sources.backoff_max", .double(\.backoffMax), .reals(lower: 0, lowerOpen: true, upper: day), help: "reconnect delay cap (>= backoff_initial), seconds"),
        ConfigField("sources.backoff_reset_after", .double(\.backoffResetAfter), .reals(lower: 0, upper: day), help: "healthy seconds that reset the delay"),
        ConfigField("sources.live_queue_frames", .int(\.liveQueueFrames), .integers(1...10_000), help: "frames a live source may queue before the oldest are dropped"),
        ConfigField("sources.retry_initial", .double(\.retryInitial), .reals(lower: 0, lowerOpen: true, upper: day), help: "first retry delay of a file that failed for a transient reason (permission, I/O), doubling"),
        ConfigField("sources.retry_max", .double(\.retryMax), .reals(lower: 0, lowerOpen: true, upper: 7 * day), help: "cap of that retry delay (>= retry_initial), seconds"),
        ConfigField("decode.size", .int(\.size), .integers(32...1024), help: "short side of decoded frames (the working resolution), pixels"),
        ConfigField("decode.fps", .double(\.fps), .reals(lower: 0, upper: 240), help: "frames per second kept on a time grid (0 keeps every frame)"),
        ConfigField("decode.decoder_threads", .int(\.decoderThreads), .integers(1...64), help: "FFmpeg decoder threads per source"),
        ConfigField("decode.sample_rate", .int(\.sampleRate), .integers(8_000...48_000), help: "audio resampled to this rate, Hz"),
        ConfigField("decode.mel_bands", .int(\.melBands), .integers(8...256), help: "log-mel bands (25 ms window, 10 ms hop)"),
        ConfigField("decode.file_timeout", .double(\.fileTimeout), .reals(lower: 0, lowerOpen: true, upper: day), help: "longest single blocking read of a local file (a playlist that never ends), seconds"),
        ConfigField("model.video", .choice(\.videoArchitecture), help: "video encoder"),
        ConfigField("model.audio", .choice(\.audioArchitecture), help: "audio encoder over log-mel"),
        ConfigField("model.projection_hidden", .int(\.projectionHidden), .integers(1...8192), help: "projection head hidden width"),
        ConfigField("model.embedding", .int(\.embedding), .integers(2...4096), help: "projection head output width"),
        ConfigField("objective.kind", .choice(\.objective), help: "method on image pairs (audio-video pairs always use cross-modal InfoNCE)"),
        ConfigField("objective.temperature", .double(\.temperature), .reals(lower: 0, lowerOpen: true, upper: 10), help: "softmax temperature of the contrastive losses"),
        ConfigField("objective.queue", .int(\.queue), .integers(1...262_144), help: "MoCo key queue length"),
        ConfigField("objective.key_momentum", .double(\.keyMomentum), .reals(lower: 0, upper: 1, upperOpen: true), help: "EMA momentum of the key encoder"),
        ConfigField("objective.audio_weight", .double(\.audioWeight), .reals(lower: 0, upper: 100), help: "weight of the audio-video loss (0 trains no audio encoder)"),
        ConfigField("objective.mask_window", .double(\.maskWindow), .reals(lower: 0, upper: day), help: "negatives from the same source within this many seconds are masked (likely the same content)"),
    ] + MethodKind.settings.map { s in
        ConfigField("objective.\(s.key)", .method(key: s.key, integer: s.integer),
                    s.integer ? .integers(Int(s.lower)...Int(s.upper)) : .reals(lower: s.lower, upper: s.upper, upperOpen: s.upperOpen), help: s.help)
    } + [
        ConfigField("optimizer.kind", .choice(\.optimizer), help: "optimizer"),
        ConfigField("optimizer.learning_rate", .double(\.learningRate), .reals(lower: 0, lowerOpen: true, upper: 10), help: "rate after warmup (constant: the stream is open-ended)"),
        ConfigField("optimizer.momentum", .double(\.sgdMomentum), .reals(lower: 0, upper: 1, upperOpen: true), help: "SGD momentum"),
        ConfigField("optimizer.weight_decay", .double(\.weightDecay), .reals(lower: 0, upper: 1), help: "weight decay"),
        ConfigField("optimizer.warmup_steps", .int(\.warmupSteps), .integers(0...100_000_000), help: "linear warmup steps"),
        ConfigField("optimizer.max_gradient_norm", .double(\.maxGradientNorm), .reals(lower: 0, upper: 1e6), help: "global gradient-norm clip (0 disables)"),
        ConfigField("training.batch", .int(\.batch), .integers(2...4096), help: "pairs per step"),
        ConfigField("training.threads", .int(\.threads), .integers(0...256), help: "compute threads (0: cores minus decoder threads)"),
        ConfigField("training.convolution", .choice(\.convolution), help: "how convolutions are computed: onednn (oneDNN's JIT kernels) or blas (im2col and OpenBLAS sgemm)"),
        ConfigField("training.max_reuse", .int(\.maxReuse), .integers(1...1_000_000), help: "times an example may be trained on before the trainer waits for new data"),
        ConfigField("training.replay_ratio", .int(\.replayRatio), .integers(1...1_000_000), help: "uses the trainer may draw per example delivered while sources deliver (at most max_reuse): the data a step sees does not depend on decoding speed"),
        ConfigField("training.prefill", .int(\.prefill), .integers(0...100_000_000), help: "examples the replay buffer must have received before the first step while sources deliver (0: a batch; with a buffer that holds a whole pass over the files, training sees shuffled data)"),
        ConfigField("training.seed", .int(\.seed), .integers(0...Int(Int32.max)), flag: "--seed", help: "seed of weights, sampling and augmentation"),
        ConfigField("training.deterministic", .bool(\.deterministic), flag: "--deterministic", help: "lockstep mode for exact resume: files only, read in path order on the trainer thread"),
        ConfigField("checkpoint.every", .double(\.checkpointEvery), .reals(lower: 0, lowerOpen: true, upper: 7 * day), flag: "--checkpoint-every", help: "seconds between checkpoints"),
        ConfigField("checkpoint.keep", .int(\.keep), .integers(1...1000), help: "checkpoints kept"),
        ConfigField("checkpoint.replay_every", .int(\.replayEvery), .integers(0...1000), help: "every Nth checkpoint carries the replay buffer (1: all, 0: none; the final one and deterministic runs always do)"),
        ConfigField("http.listen", .string(\.httpListen), flag: "--http-listen", help: "address:port of the metrics, status and health endpoint (\"\" turns it off; port 0 picks a free one)"),
        ConfigField("http.max_connections", .int(\.httpMaxConnections), .integers(1...100_000), help: "open connections the endpoint accepts at once (more are closed at once)"),
        ConfigField("monitor.every", .int(\.monitorEvery), .integers(1...1_000_000), help: "steps between recorded scalars (status page plots, TensorBoard)"),
        ConfigField("monitor.rank_every", .int(\.rankEvery), .integers(1...1_000_000), help: "steps between effective-rank measurements"),
        ConfigField("monitor.rank_window", .int(\.rankWindow), .integers(2...65_536), help: "latest embeddings the effective rank is measured on"),
        ConfigField("monitor.collapse_std_ratio", .double(\.collapseStdRatio), .reals(lower: 0, upper: 10), help: "collapse alarm: embedding std × √d below this (about 1 when healthy)"),
        ConfigField("monitor.collapse_rank", .double(\.collapseRank), .reals(lower: 0, upper: 65_536), help: "collapse alarm: effective rank below this (1 is a single direction)"),
        ConfigField("monitor.collapse_steps", .int(\.collapseSteps), .integers(1...100_000_000), help: "collapse alarm: consecutive steps below a threshold before it is raised"),
        ConfigField("monitor.stuck_seconds", .double(\.stuckSeconds), .reals(lower: 0, lowerOpen: true, upper: day), help: "/healthz answers 503 when the trainer has not stepped or idled this long"),
        ConfigField("monitor.tensorboard", .bool(\.tensorboard), help: "write TensorBoard event files to STATE_DIR/tensorboard"),
        ConfigField("monitor.history_points", .int(\.historyPoints), .integers(16...1_000_000), help: "points kept per plotted series (older ones are thinned, so the plots span the whole run)"),
        ConfigField("monitor.retrieval_every", .double(\.retrievalEvery), .reals(lower: 0, upper: day), help: "seconds between refreshes of the status page's nearest-neighbour panel (0 turns it off)"),
        ConfigField("monitor.labelled", .string(\.labelled), help: "kNN monitor: a folder with one subfolder of clips or images per class (\"\" turns it off)"),
        ConfigField("monitor.knn_every", .int(\.knnEvery), .integers(1...100_000_000), help: "kNN monitor: steps between evaluations"),
        ConfigField("monitor.knn_k", .int(\.knnK), .integers(1...10_000), help: "kNN monitor: neighbours that vote"),
        ConfigField("monitor.knn_temperature", .double(\.knnTemperature), .reals(lower: 0, lowerOpen: true, upper: 10), help: "kNN monitor: temperature of the vote weights exp(cos / T)"),
        ConfigField("distributed.step_timeout", .double(\.stepTimeout), .reals(lower: 0, lowerOpen: true, upper: day), help: "under mpirun: a collective that has not returned after this many seconds ends the rank (a dead or stalled rank), and mpirun the job"),
        ConfigField("distributed.checksum_every", .int(\.checksumEvery), .integers(0...100_000_000), help: "under mpirun: steps between comparisons of a parameter checksum across ranks (0: never); a mismatch ends the job"),
        ConfigField("distributed.split_files", .bool(\.splitFiles), help: "under mpirun: every rank watches the same files and takes those whose path hashes to it (false: each rank learns from all the files it sees)"),
        ConfigField("pairing.near", .double(\.pairing.near), .reals(lower: 0, lowerOpen: true, upper: 3600), help: "temporal positives within ±near seconds"),
        ConfigField("pairing.far", .double(\.pairing.far), .reals(lower: 0, lowerOpen: true, upper: 3600), help: "same-source negatives beyond far seconds (> near)"),
        ConfigField("pairing.temporal_per_second", .double(\.pairing.temporalPerSecond), .reals(lower: 0, upper: 1000), help: "temporal pairs per second of video"),
        ConfigField("pairing.patch_size", .int(\.pairing.patchSize), .integers(8...512), help: "tracked patch side (even, at most decode.size), pixels"),
        ConfigField("pairing.search_radius", .int(\.pairing.searchRadius), .integers(1...256), help: "tracker search radius per frame, pixels"),
        ConfigField("pairing.min_track_confidence", .float(\.pairing.minTrackConfidence), .reals(lower: -1, upper: 1), help: "NCC below which a track is lost"),
        ConfigField("pairing.track_duration", .double(\.pairing.trackDuration), .reals(lower: 0, lowerOpen: true, upper: 3600), help: "seconds a track must last to give a pair"),
        ConfigField("pairing.max_tracks", .int(\.pairing.maxTracks), .integers(1...256), help: "tracks alive at once per source"),
        ConfigField("pairing.track_start_interval", .double(\.pairing.trackStartInterval), .reals(lower: 0, lowerOpen: true, upper: 3600), help: "seconds between track starts"),
        ConfigField("pairing.min_motion", .float(\.pairing.minMotion), .reals(lower: 0, upper: 255), help: "patch selection: mean |frame difference|, grey levels"),
        ConfigField("pairing.min_texture", .float(\.pairing.minTexture), .reals(lower: 0, upper: 255), help: "patch selection: mean gradient, grey levels"),
        ConfigField("pairing.audio_window", .double(\.pairing.audioWindow), .reals(lower: 0, lowerOpen: true, upper: 10), help: "seconds of log-mel paired with a frame"),
        ConfigField("pairing.audio_jitter", .double(\.pairing.audioJitter), .reals(lower: 0, upper: 10), help: "random offset of the audio window centre, seconds"),
        ConfigField("pairing.audio_video_per_second", .double(\.pairing.audioVideoPerSecond), .reals(lower: 0, upper: 1000), help: "audio-video pairs per second of video"),
        ConfigField("pairing.history_seconds", .double(\.pairing.historySeconds), .reals(lower: 0, lowerOpen: true, upper: 3600), help: "frames kept per source (>= far)"),
        ConfigField("pairing.buffer_bytes", .int(\.pairing.bufferBytes), .integers((1 << 20)...(1 << 40)), help: "replay buffer bound, bytes"),
        ConfigField("pairing.buffer_policy", .choice(\.pairing.bufferPolicy), help: "what the full replay buffer evicts: minred (the most redundant example) or fifo (the oldest)"),
        ConfigField("pairing.mix.temporal", .double(\.pairing.mix.temporal), probability, help: "share of temporal pairs per batch"),
        ConfigField("pairing.mix.tracked", .double(\.pairing.mix.tracked), probability, help: "share of tracked-patch pairs per batch"),
        ConfigField("pairing.mix.audio_video", .double(\.pairing.mix.audioVideo), probability, help: "share of audio-video pairs per batch (the shares must not all be 0)"),
        ConfigField("pairing.image.output_size", .int(\.pairing.image.outputSize), .integers(16...512), help: "side of the augmented view fed to the encoder, pixels"),
        ConfigField("pairing.image.flip_probability", .float(\.pairing.image.flipProbability), probability, help: "horizontal flip probability"),
        ConfigField("pairing.image.jitter_probability", .float(\.pairing.image.jitterProbability), probability, help: "colour jitter probability"),
        ConfigField("pairing.image.brightness", .float(\.pairing.image.brightness), probability, help: "brightness jitter strength"),
        ConfigField("pairing.image.contrast", .float(\.pairing.image.contrast), probability, help: "contrast jitter strength"),
        ConfigField("pairing.image.saturation", .float(\.pairing.image.saturation), probability, help: "saturation jitter strength"),
        ConfigField("pairing.image.hue", .float(\.pairing.image.hue), .reals(lower: 0, upper: 0.5), help: "hue jitter, fraction of the colour wheel"),
        ConfigField("pairing.image.grayscale_probability", .float(\.pairing.image.grayscaleProbability), probability, help: "grayscale probability"),
        ConfigField("pairing.image.blur_probability", .float(\.pairing.image.blurProbability), probability, help: "Gaussian blur probability"),
        ConfigField("pairing.audio.gain_decibels", .float(\.pairing.audio.gainDecibels), .reals(lower: 0, upper: 60), help: "random gain, ± dB"),
        ConfigField("pairing.audio.frequency_masks", .int(\.pairing.audio.frequencyMasks), .integers(0...16), help: "mel band masks per view"),
        ConfigField("pairing.audio.time_masks", .int(\.pairing.audio.timeMasks), .integers(0...16), help: "time-step masks per view"),
    ]

    static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(format: "%.1f", x) : String(x)
    }

    /// A Float as written: the shortest decimal that reads back as the same Float (0.6, not
    /// 0.6000000238418579, which is what it becomes as a Double).
    static func number(_ x: Float) -> String {
        x == x.rounded() && abs(x) < 1e7 ? String(format: "%.1f", Double(x)) : "\(x)"
    }

    /// A TOML basic string: quotes, backslashes and control characters escaped, so any value
    /// (a path with a newline) prints as TOML that reads back the same.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f: out += String(format: "\\u%04X", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
