/// Every setting of the pairing stage, with its default. The daemon's config file exposes these
/// under `[pairing]`; the README lists them.
public struct PairingConfig: Sendable, Codable, Equatable {
    /// Temporal pairs: positives within ±`near` s; same-source negatives beyond `far` s (also the
    /// objective's mask window for same-source queue entries).
    public var near: Double = 0.5
    public var far: Double = 10
    /// Temporal pairs emitted per second of video per source.
    public var temporalPerSecond: Double = 4

    /// Tracked patches: side in pixels at the working resolution, search radius per frame, NCC
    /// threshold below which a track is lost, track length in seconds, tracks alive at once per
    /// source, and seconds between attempts to start one.
    public var patchSize = 64
    public var searchRadius = 16
    public var minTrackConfidence: Float = 0.6
    public var trackDuration: Double = 1
    public var maxTracks = 2
    public var trackStartInterval: Double = 0.5
    /// Patch selection thresholds: mean |frame difference| and mean gradient (grey levels).
    public var minMotion: Float = 2
    public var minTexture: Float = 4

    /// Audio-video pairs: log-mel window length and the random offset of its centre (seconds),
    /// and pairs emitted per second of video per source (sources without audio emit none).
    public var audioWindow: Double = 1
    public var audioJitter: Double = 0.1
    public var audioVideoPerSecond: Double = 4

    /// Seconds of frames kept per source (must exceed `far` for far negatives to exist).
    public var historySeconds: Double = 12
    /// Kinds per batch.
    public var mix = PairMix()
    /// Augmentations applied to every view when a batch is drawn.
    public var image = ImageAugmentation()
    public var audio = AudioAugmentation()
    /// The replay buffer's bound in bytes (default 256 MiB).
    public var bufferBytes = 256 << 20
    /// What the full replay buffer evicts (default MinRed: the most redundant example).
    public var bufferPolicy = ReplayPolicy.minred

    public init() {}

    /// Checks ranges; returns a message naming the first bad key.
    public func validationError() -> String? {
        if !(near > 0) { return "pairing.near must be > 0" }
        if !(far > near) { return "pairing.far must be greater than pairing.near" }
        if historySeconds < far { return "pairing.history_seconds must be at least pairing.far" }
        if patchSize < 8 || patchSize % 2 != 0 { return "pairing.patch_size must be even and at least 8" }
        if searchRadius < 1 { return "pairing.search_radius must be at least 1" }
        if !(trackDuration > 0) { return "pairing.track_duration must be > 0" }
        if !(audioWindow > 0) || audioJitter < 0 { return "pairing.audio_window must be > 0 and pairing.audio_jitter >= 0" }
        if temporalPerSecond < 0 || audioVideoPerSecond < 0 { return "pairing rates must be >= 0" }
        if mix.temporal < 0 || mix.tracked < 0 || mix.audioVideo < 0 || mix.temporal + mix.tracked + mix.audioVideo <= 0 {
            return "pairing.mix shares must be >= 0 and not all 0"
        }
        if bufferBytes < 1 << 20 { return "pairing.buffer_bytes must be at least 1 MiB" }
        return nil
    }
}
