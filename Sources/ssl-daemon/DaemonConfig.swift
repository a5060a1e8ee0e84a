import TemporalContrast

/// Every setting of `ssl-daemon run`, with its default. The TOML file, the flags and
/// `--print-config` all go through `DaemonConfig.fields`, so each key has one name and one default.
struct DaemonConfig: Sendable, Equatable {
    // [sources]
    var watch: [String] = []
    var streams: [String] = []
    var epochs = 1
    var pollInterval = 2.0
    var settleSeconds = 1.0
    var liveTimeout = 10.0
    var stallSeconds = 15.0
    var backoffInitial = 1.0
    var backoffMax = 60.0
    var backoffResetAfter = 30.0
    var liveQueueFrames = 250
    // [decode]
    var size = 128
    var fps = 10.0
    var decoderThreads = 1
    var sampleRate = 16_000
    var melBands = 64
    // [model]
    var videoArchitecture = "reference"
    var audioArchitecture = "audio"
    var projectionHidden = 256
    var embedding = 128
    // [objective]
    var objective = "moco"
    var temperature = 0.1
    var queue = 4096
    var keyMomentum = 0.99
    var audioWeight = 1.0
    var maskWindow = 2.0
    // [optimizer]
    var optimizer = "sgd"
    var learningRate = 0.03
    var sgdMomentum = 0.9
    var weightDecay = 1e-4
    var warmupSteps = 200
    var maxGradientNorm = 5.0
    // [training]
    var batch = 64
    var threads = 0
    var maxReuse = 8
    var seed = 0
    var deterministic = false
    // [checkpoint]
    var checkpointEvery = 300.0
    var keep = 3
    // top level
    var stateDir = "state"
    var graceSeconds = 30.0
    var logLevel = "info"
    // [pairing], [pairing.mix], [pairing.image], [pairing.audio]
    var pairing = PairingConfig()

    /// Compute threads: the configured count, or the cores left after the decoder threads.
    /// Deterministic runs default to one thread: results then do not depend on the machine.
    var computeThreads: Int { threads > 0 ? threads : deterministic ? 1 : max(1, System.cores - decoderThreads) }
}

enum System {
    static var cores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

import Glibc

/// One configurable key: its TOML path, documentation, and how to read and write it.
struct ConfigField: Sendable {
    enum Kind: Sendable {
        case int(WritableKeyPath<DaemonConfig, Int> & Sendable)
        case double(WritableKeyPath<DaemonConfig, Double> & Sendable)
        case float(WritableKeyPath<DaemonConfig, Float> & Sendable)
        case string(WritableKeyPath<DaemonConfig, String> & Sendable)
        case bool(WritableKeyPath<DaemonConfig, Bool> & Sendable)
        case strings(WritableKeyPath<DaemonConfig, [String]> & Sendable)
    }
    let key: String
    let kind: Kind
    let help: String
}

extension DaemonConfig {
    static let fields: [ConfigField] = [
        ConfigField(key: "state_dir", kind: .string(\.stateDir), help: "checkpoints, ledger and logs of this daemon"),
        ConfigField(key: "grace_seconds", kind: .double(\.graceSeconds), help: "longest graceful shutdown after SIGTERM/SIGINT"),
        ConfigField(key: "log_level", kind: .string(\.logLevel), help: "trace, debug, info, notice, warning, error, critical"),
        ConfigField(key: "sources.watch", kind: .strings(\.watch), help: "directories whose media files are learned from"),
        ConfigField(key: "sources.streams", kind: .strings(\.streams), help: "live URLs (udp, tcp, rtsp, rtmp, http/hls, srt) or - for stdin"),
        ConfigField(key: "sources.epochs", kind: .int(\.epochs), help: "times each file is read before the ledger marks it done"),
        ConfigField(key: "sources.poll_interval", kind: .double(\.pollInterval), help: "seconds between scans of watched directories"),
        ConfigField(key: "sources.settle_seconds", kind: .double(\.settleSeconds), help: "a file is taken once its size and mtime are unchanged this long"),
        ConfigField(key: "sources.live_timeout", kind: .double(\.liveTimeout), help: "longest single blocking read of a live source"),
        ConfigField(key: "sources.stall_seconds", kind: .double(\.stallSeconds), help: "no frame for this long forces a reconnect"),
        ConfigField(key: "sources.backoff_initial", kind: .double(\.backoffInitial), help: "first reconnect delay (doubles, with jitter)"),
        ConfigField(key: "sources.backoff_max", kind: .double(\.backoffMax), help: "reconnect delay cap"),
        ConfigField(key: "sources.backoff_reset_after", kind: .double(\.backoffResetAfter), help: "healthy seconds that reset the delay"),
        ConfigField(key: "sources.live_queue_frames", kind: .int(\.liveQueueFrames), help: "frames a live source may queue before the oldest are dropped"),
        ConfigField(key: "decode.size", kind: .int(\.size), help: "short side of decoded frames (the working resolution), pixels"),
        ConfigField(key: "decode.fps", kind: .double(\.fps), help: "frames per second kept on a time grid (0 keeps every frame)"),
        ConfigField(key: "decode.decoder_threads", kind: .int(\.decoderThreads), help: "FFmpeg decoder threads per source"),
        ConfigField(key: "decode.sample_rate", kind: .int(\.sampleRate), help: "audio resampled to this rate, Hz"),
        ConfigField(key: "decode.mel_bands", kind: .int(\.melBands), help: "log-mel bands (25 ms window, 10 ms hop)"),
        ConfigField(key: "model.video", kind: .string(\.videoArchitecture), help: "video encoder: reference or resnet-small"),
        ConfigField(key: "model.audio", kind: .string(\.audioArchitecture), help: "audio encoder over log-mel: audio"),
        ConfigField(key: "model.projection_hidden", kind: .int(\.projectionHidden), help: "projection head hidden width"),
        ConfigField(key: "model.embedding", kind: .int(\.embedding), help: "projection head output width"),
        ConfigField(key: "objective.kind", kind: .string(\.objective), help: "moco, infonce or vicreg (audio-video pairs always use cross-modal InfoNCE)"),
        ConfigField(key: "objective.temperature", kind: .double(\.temperature), help: "softmax temperature of the contrastive losses"),
        ConfigField(key: "objective.queue", kind: .int(\.queue), help: "MoCo key queue length"),
        ConfigField(key: "objective.key_momentum", kind: .double(\.keyMomentum), help: "EMA momentum of the key encoder"),
        ConfigField(key: "objective.audio_weight", kind: .double(\.audioWeight), help: "weight of the audio-video loss"),
        ConfigField(key: "objective.mask_window", kind: .double(\.maskWindow), help: "negatives from the same source within this many seconds are masked (likely the same content)"),
        ConfigField(key: "optimizer.kind", kind: .string(\.optimizer), help: "sgd or adamw"),
        ConfigField(key: "optimizer.learning_rate", kind: .double(\.learningRate), help: "rate after warmup (constant: the stream is open-ended)"),
        ConfigField(key: "optimizer.momentum", kind: .double(\.sgdMomentum), help: "SGD momentum"),
        ConfigField(key: "optimizer.weight_decay", kind: .double(\.weightDecay), help: "weight decay"),
        ConfigField(key: "optimizer.warmup_steps", kind: .int(\.warmupSteps), help: "linear warmup steps"),
        ConfigField(key: "optimizer.max_gradient_norm", kind: .double(\.maxGradientNorm), help: "global gradient-norm clip (0 disables)"),
        ConfigField(key: "training.batch", kind: .int(\.batch), help: "pairs per step"),
        ConfigField(key: "training.threads", kind: .int(\.threads), help: "compute threads (0: cores minus decoder threads)"),
        ConfigField(key: "training.max_reuse", kind: .int(\.maxReuse), help: "times an example may be trained on before the trainer waits for new data"),
        ConfigField(key: "training.seed", kind: .int(\.seed), help: "seed of weights, sampling and augmentation"),
        ConfigField(key: "training.deterministic", kind: .bool(\.deterministic), help: "lockstep mode for exact resume: files only, read in path order on the trainer thread"),
        ConfigField(key: "checkpoint.every", kind: .double(\.checkpointEvery), help: "seconds between checkpoints"),
        ConfigField(key: "checkpoint.keep", kind: .int(\.keep), help: "checkpoints kept"),
        ConfigField(key: "pairing.near", kind: .double(\.pairing.near), help: "temporal positives within ±near seconds"),
        ConfigField(key: "pairing.far", kind: .double(\.pairing.far), help: "same-source negatives beyond far seconds"),
        ConfigField(key: "pairing.temporal_per_second", kind: .double(\.pairing.temporalPerSecond), help: "temporal pairs per second of video"),
        ConfigField(key: "pairing.patch_size", kind: .int(\.pairing.patchSize), help: "tracked patch side, pixels"),
        ConfigField(key: "pairing.search_radius", kind: .int(\.pairing.searchRadius), help: "tracker search radius per frame, pixels"),
        ConfigField(key: "pairing.min_track_confidence", kind: .float(\.pairing.minTrackConfidence), help: "NCC below which a track is lost"),
        ConfigField(key: "pairing.track_duration", kind: .double(\.pairing.trackDuration), help: "seconds a track must last to give a pair"),
        ConfigField(key: "pairing.max_tracks", kind: .int(\.pairing.maxTracks), help: "tracks alive at once per source"),
        ConfigField(key: "pairing.track_start_interval", kind: .double(\.pairing.trackStartInterval), help: "seconds between track starts"),
        ConfigField(key: "pairing.min_motion", kind: .float(\.pairing.minMotion), help: "patch selection: mean |frame difference|"),
        ConfigField(key: "pairing.min_texture", kind: .float(\.pairing.minTexture), help: "patch selection: mean gradient"),
        ConfigField(key: "pairing.audio_window", kind: .double(\.pairing.audioWindow), help: "seconds of log-mel paired with a frame"),
        ConfigField(key: "pairing.audio_jitter", kind: .double(\.pairing.audioJitter), help: "random offset of the audio window centre, seconds"),
        ConfigField(key: "pairing.audio_video_per_second", kind: .double(\.pairing.audioVideoPerSecond), help: "audio-video pairs per second of video"),
        ConfigField(key: "pairing.history_seconds", kind: .double(\.pairing.historySeconds), help: "frames kept per source (>= far)"),
        ConfigField(key: "pairing.buffer_bytes", kind: .int(\.pairing.bufferBytes), help: "replay buffer bound, bytes"),
        ConfigField(key: "pairing.mix.temporal", kind: .double(\.pairing.mix.temporal), help: "share of temporal pairs per batch"),
        ConfigField(key: "pairing.mix.tracked", kind: .double(\.pairing.mix.tracked), help: "share of tracked-patch pairs per batch"),
        ConfigField(key: "pairing.mix.audio_video", kind: .double(\.pairing.mix.audioVideo), help: "share of audio-video pairs per batch"),
        ConfigField(key: "pairing.image.output_size", kind: .int(\.pairing.image.outputSize), help: "side of the augmented view fed to the encoder"),
        ConfigField(key: "pairing.image.flip_probability", kind: .float(\.pairing.image.flipProbability), help: "horizontal flip probability"),
        ConfigField(key: "pairing.image.jitter_probability", kind: .float(\.pairing.image.jitterProbability), help: "colour jitter probability"),
        ConfigField(key: "pairing.image.brightness", kind: .float(\.pairing.image.brightness), help: "brightness jitter strength"),
        ConfigField(key: "pairing.image.contrast", kind: .float(\.pairing.image.contrast), help: "contrast jitter strength"),
        ConfigField(key: "pairing.image.saturation", kind: .float(\.pairing.image.saturation), help: "saturation jitter strength"),
        ConfigField(key: "pairing.image.hue", kind: .float(\.pairing.image.hue), help: "hue jitter, fraction of the colour wheel"),
        ConfigField(key: "pairing.image.grayscale_probability", kind: .float(\.pairing.image.grayscaleProbability), help: "grayscale probability"),
        ConfigField(key: "pairing.image.blur_probability", kind: .float(\.pairing.image.blurProbability), help: "Gaussian blur probability"),
        ConfigField(key: "pairing.audio.gain_decibels", kind: .float(\.pairing.audio.gainDecibels), help: "random gain, ± dB"),
        ConfigField(key: "pairing.audio.frequency_masks", kind: .int(\.pairing.audio.frequencyMasks), help: "mel band masks per view"),
        ConfigField(key: "pairing.audio.time_masks", kind: .int(\.pairing.audio.timeMasks), help: "time-step masks per view"),
    ]
}
