/// One decoded RGB frame.
public struct VideoFrame: Sendable {
    /// Presentation time in seconds since the input's start (shared clock with audio).
    public var timestamp: Double
    /// Index of the continuous stretch of timeline this frame belongs to (see `SegmentBoundary`).
    public var segment: Int
    public var width: Int
    public var height: Int
    /// Packed RGB24, row-major, `width * 3` bytes per row, no padding: `width * height * 3` bytes.
    public var pixels: [UInt8]
    /// The decoder reported errors for this frame (concealment, missing references).
    public var isDamaged: Bool
}

/// A run of mono Float32 samples at the requested rate.
public struct AudioChunk: Sendable {
    /// Time of the first sample, seconds since the input's start.
    public var timestamp: Double
    public var segment: Int
    /// Samples per second.
    public var sampleRate: Int
    /// Mono samples, nominally in [-1, 1].
    public var samples: [Float]

    public var duration: Double { Double(samples.count) / Double(sampleRate) }
}

/// The timeline jumped (a timestamp reset, a gap, a reconnect): items before and after do not
/// belong to one continuous stretch, so nothing should pair across it.
public struct SegmentBoundary: Sendable, Equatable {
    public enum Reason: String, Sendable { case backwardJump = "backward_jump", forwardJump = "forward_jump" }
    /// The new segment's index (the first segment is 0 and has no boundary).
    public var segment: Int
    /// Timestamp of the first item in the new segment, and of the last item before it.
    public var timestamp: Double
    public var previousTimestamp: Double
    public var reason: Reason
}

public enum MediaItem: Sendable {
    case video(VideoFrame)
    case audio(AudioChunk)
    case segmentBoundary(SegmentBoundary)
}

/// What the container says about its streams, known right after opening.
public struct MediaInfo: Sendable {
    public struct Video: Sendable {
        public var codec: String
        public var width: Int
        public var height: Int
        /// Average frame rate from the container, if it declares one.
        public var fps: Double?
    }

    public struct Audio: Sendable {
        public var codec: String
        public var sampleRate: Int
        public var channels: Int
    }

    public var format: String
    /// Container duration in seconds, if known (live sources usually have none).
    public var duration: Double?
    public var video: Video?
    public var audio: Audio?
}

/// Running counts, updated as the decoder goes.
public struct DecodeStats: Sendable {
    public var packetsRead = 0
    /// Packets the demuxer or a decoder rejected as damaged (skipped, not fatal).
    public var corruptPackets = 0
    /// Frames the decoder produced but flagged as damaged (delivered, marked `isDamaged`).
    public var damagedFrames = 0
    public var videoFramesDecoded = 0
    public var videoFramesDelivered = 0
    /// Frames swscale could not convert (unsupported pixel format or geometry); not delivered.
    public var unconvertibleFrames = 0
    /// Audio samples per channel at the stream's own rate.
    public var audioSamplesDecoded = 0
    /// Mono samples delivered at the output rate.
    public var audioSamplesDelivered = 0
    public var segments = 1
    /// End of the last decoded video frame or audio sample, seconds since the input's start.
    public var endTimestamp: Double = 0

    public init() {}
}
