import StreamDecode

/// Everything one decoder produced, for assertions.
struct Decoded {
    var frames: [VideoFrame] = []
    var chunks: [AudioChunk] = []
    var boundaries: [SegmentBoundary] = []
    var stats = DecodeStats()
    var info: MediaInfo?
    /// The error that ended decoding, if any (after all items were delivered).
    var error: DecodeError?

    var audioSamples: Int { chunks.reduce(0) { $0 + $1.samples.count } }
}

/// Decodes `location` to the end, keeping what came out before any error. `interrupt` lets another
/// thread stop it.
func decodeAll(
    _ location: String, options: DecodeOptions = DecodeOptions(), interrupt: DecodeInterrupt = DecodeInterrupt()
) throws(DecodeError) -> Decoded {
    let decoder = try MediaDecoder(location, options: options, interrupt: interrupt)
    var result = Decoded()
    result.info = decoder.info
    do {
        while let item = try decoder.next() {
            switch item {
            case .video(let f): result.frames.append(f)
            case .audio(let c): result.chunks.append(c)
            case .segmentBoundary(let b): result.boundaries.append(b)
            }
        }
    } catch {
        result.error = error
    }
    result.stats = decoder.stats
    return result
}

func options(threads: Int = 1, size: VideoOptions.Size = .shortSide(64), fps: Double? = nil, audio: Bool = true) -> DecodeOptions {
    var o = DecodeOptions()
    o.decoderThreads = threads
    o.video = VideoOptions(size: size, fps: fps)
    if !audio { o.audio = nil }
    return o
}
