/// How a `MediaDecoder` converts what it decodes. Every default here is documented in the README.
public struct DecodeOptions: Sendable {
    /// Video output, or nil to ignore video streams.
    public var video: VideoOptions? = VideoOptions()
    /// Audio output, or nil to ignore audio streams.
    public var audio: AudioOptions? = AudioOptions()
    /// Decoder threads for video (frame + slice threading). FFmpeg's library default is 1; the CLI's
    /// is "auto". We take an explicit count so decode and training threads never oversubscribe.
    public var decoderThreads: Int = 1
    /// Longest a single blocking call (open, probe, read) may take on a live source (network or
    /// stdin), in seconds. `interrupt()` works on every kind.
    public var ioTimeout: Double = 10
    /// Longest a single blocking call (open, probe, read) may take on a local file, in seconds.
    /// Generous, because a local read normally takes microseconds: it exists so that no file can
    /// hold its caller forever (a hung network mount, a pathological playlist), not to pace
    /// slow disks. A call that exceeds it fails with `.timedOut`, which `isTransient`.
    public var fileTimeout: Double = 60
    /// Extra demuxer/protocol options passed to avformat_open_input, e.g. `rtsp_transport=tcp`.
    /// `protocol_whitelist` cannot be overridden here.
    public var formatOptions: [String: String] = [:]
    /// A timestamp that jumps forward by more than this many seconds, or backward by more than
    /// `backwardJumpTolerance`, starts a new segment.
    public var forwardJumpThreshold: Double = 5
    public var backwardJumpTolerance: Double = 0.5
    /// Stop after this many consecutive unreadable packets (a file that is garbage past some point).
    public var maxConsecutiveReadErrors: Int = 200

    public init() {}

    func validate(input: String) throws(DecodeError) {
        func bad(_ message: String) -> DecodeError {
            DecodeError(kind: .invalidOptions, input: input, call: "DecodeOptions", message: message)
        }
        if video == nil && audio == nil { throw bad("neither video nor audio output requested") }
        if decoderThreads < 1 || decoderThreads > 64 { throw bad("decoderThreads must be in 1...64, got \(decoderThreads)") }
        if !(ioTimeout > 0 && ioTimeout <= 86_400) { throw bad("ioTimeout must be in (0, 86400] seconds, got \(ioTimeout)") }
        if !(fileTimeout > 0 && fileTimeout <= 86_400) { throw bad("fileTimeout must be in (0, 86400] seconds, got \(fileTimeout)") }
        if let v = video { try v.validate(bad) }
        if let a = audio { try a.validate(bad) }
    }

    /// The deadline, in seconds, for each blocking call on `source`: `ioTimeout` for live sources,
    /// `fileTimeout` for local files.
    func callTimeout(for source: MediaSource) -> Double { source.isLive ? ioTimeout : fileTimeout }
}

/// RGB output of video frames.
public struct VideoOptions: Sendable {
    public enum Size: Sendable, Equatable {
        /// Scale so the shorter side is this many pixels, keeping the aspect ratio.
        case shortSide(Int)
        /// Scale to exactly this size (aspect ratio not kept).
        case exact(width: Int, height: Int)
        /// Keep the decoded size.
        case native
    }

    /// libswscale's resampling filter.
    public enum Scaling: String, Sendable, CaseIterable {
        case fastBilinear = "fast_bilinear", bilinear, bicubic, area
    }

    public var size: Size = .shortSide(128)
    /// Longest output side a short-side resize may produce (pixels).
    public static let maximumSide = 4096
    /// Keep at most one frame per 1/fps seconds on a fixed time grid (nil keeps every frame).
    /// Grid-based, so variable-frame-rate input is subsampled evenly.
    public var fps: Double? = nil
    public var scaling: Scaling = .bilinear

    public init(size: Size = .shortSide(128), fps: Double? = nil, scaling: Scaling = .bilinear) {
        self.size = size
        self.fps = fps
        self.scaling = scaling
    }

    func validate(_ bad: (String) -> DecodeError) throws(DecodeError) {
        switch size {
        case .shortSide(let s) where s < 2 || s > 8192: throw bad("video short side must be in 2...8192, got \(s)")
        case .exact(let w, let h) where w < 2 || h < 2 || w > 8192 || h > 8192:
            throw bad("video size must be in 2...8192 on each side, got \(w)x\(h)")
        default: break
        }
        if let fps, !(fps > 0 && fps <= 1000) { throw bad("video fps must be in (0, 1000], got \(fps)") }
    }

    /// The output size for a decoded frame of `width` x `height`.
    func outputSize(width: Int, height: Int) -> (width: Int, height: Int) {
        switch size {
        case .native: return (width, height)
        case .exact(let w, let h): return (w, h)
        case .shortSide(let s):
            // The long side is capped so an absurd aspect ratio (16384×2) cannot ask for gigabytes.
            let cap = max(s, VideoOptions.maximumSide)
            if width <= height {
                return (s, min(cap, max(1, Int((Double(height) * Double(s) / Double(width)).rounded()))))
            }
            return (min(cap, max(1, Int((Double(width) * Double(s) / Double(height)).rounded()))), s)
        }
    }
}

/// Mono Float32 output of audio.
public struct AudioOptions: Sendable {
    /// Output sample rate in Hz.
    public var sampleRate: Int = 16_000
    /// Samples per delivered chunk (the last chunk of a segment may be shorter). Default 0.1 s.
    public var chunkSamples: Int = 1_600

    public init(sampleRate: Int = 16_000, chunkSamples: Int = 1_600) {
        self.sampleRate = sampleRate
        self.chunkSamples = chunkSamples
    }

    func validate(_ bad: (String) -> DecodeError) throws(DecodeError) {
        if sampleRate < 1_000 || sampleRate > 384_000 { throw bad("audio sample rate must be in 1000...384000 Hz, got \(sampleRate)") }
        if chunkSamples < 1 { throw bad("audio chunk must hold at least 1 sample, got \(chunkSamples)") }
    }
}
