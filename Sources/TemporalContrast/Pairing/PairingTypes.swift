/// One decoded frame as the pairing stage sees it (the daemon converts StreamDecode's frames).
public struct TimedFrame: Sendable, Equatable {
    /// Which source (file or stream) it came from, and which continuous stretch of that source.
    public var source: Int
    public var segment: Int
    /// Seconds on the source's timeline.
    public var time: Double
    public var width: Int
    public var height: Int
    /// Packed RGB24, `width * height * 3` bytes.
    public var pixels: [UInt8]

    public init(source: Int, segment: Int, time: Double, width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "TimedFrame: \(pixels.count) bytes for \(width)x\(height) RGB")
        self.source = source
        self.segment = segment
        self.time = time
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public var origin: SampleOrigin { SampleOrigin(source: source, time: time) }
}

/// Consecutive log-mel frames of one source: frame i is centred at `time + i * hop` seconds.
public struct MelChunk: Sendable, Equatable {
    public var source: Int
    public var segment: Int
    public var time: Double
    /// Seconds between consecutive mel frames (0.01 for the default 10 ms hop).
    public var hop: Double
    public var bands: Int
    /// `frames × bands` values, row-major.
    public var values: [Float]

    public init(source: Int, segment: Int, time: Double, hop: Double, bands: Int, values: [Float]) {
        precondition(bands > 0 && values.count % bands == 0, "MelChunk: \(values.count) values are not whole frames of \(bands) bands")
        self.source = source
        self.segment = segment
        self.time = time
        self.hop = hop
        self.bands = bands
        self.values = values
    }

    public var frames: Int { values.count / bands }
}

/// What a training example pairs.
public enum PairKind: String, Sendable, CaseIterable, Codable {
    /// Two frames close in time (CPC: nearby is related).
    case temporal
    /// A patch and the same patch followed by the tracker (Wang & Gupta 2015).
    case tracked
    /// A frame and the log-mel window of its own audio (AVID / L3-Net).
    case audioVideo = "audio_video"
}

/// An RGB crop kept for training: packed RGB24.
public struct ImageView: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// A log-mel window `[frames, bands]` kept for training.
public struct MelView: Sendable, Equatable {
    public var frames: Int
    public var bands: Int
    public var values: [Float]

    public init(frames: Int, bands: Int, values: [Float]) {
        precondition(values.count == frames * bands, "MelView: \(values.count) values for \(frames)×\(bands)")
        self.frames = frames
        self.bands = bands
        self.values = values
    }
}

/// One positive pair with where it came from, ready for augmentation and the replay buffer.
public struct TrainingExample: Sendable {
    public var kind: PairKind
    /// The anchor view (a frame or a patch).
    public var anchor: ImageView
    /// The positive: another image (temporal, tracked) or the anchor's audio (audio-video).
    public var positive: ImageView?
    public var audio: MelView?
    /// Source and time of the anchor; the positive is within the kind's window of it.
    public var origin: SampleOrigin
    public var positiveTime: Double

    public init(kind: PairKind, anchor: ImageView, positive: ImageView?, audio: MelView?, origin: SampleOrigin, positiveTime: Double) {
        self.kind = kind
        self.anchor = anchor
        self.positive = positive
        self.audio = audio
        self.origin = origin
        self.positiveTime = positiveTime
    }

    /// Bytes this example holds (what the replay buffer's bound counts).
    public var byteCount: Int {
        anchor.pixels.count + (positive?.pixels.count ?? 0) + (audio?.values.count ?? 0) * 4 + 256
    }
}
