internal import CFFmpeg

/// The video stream being decoded: its decoder, scaler and frame-rate grid.
struct VideoTrack {
    let index: Int32
    let codec: CodecContext
    let timeBase: Double
    let declaredFPS: Double?
    let options: VideoOptions
    let scaler: VideoScaler
    /// The last grid slot that delivered a frame (fps subsampling), per segment.
    private var lastSlot: Int64 = .min
    private var lastSegment = 0
    private var lastTime: Double?

    init(index: Int32, codec: CodecContext, stream: UnsafeMutablePointer<AVStream>, options: VideoOptions) {
        self.index = index
        self.codec = codec
        self.options = options
        timeBase = seconds(stream.pointee.time_base)
        let avg = stream.pointee.avg_frame_rate, real = stream.pointee.r_frame_rate
        let rate = avg.num > 0 && avg.den > 0 ? avg : real
        declaredFPS = rate.num > 0 && rate.den > 0 ? seconds(rate) : nil
        scaler = VideoScaler(options: options)
    }

    mutating func handle(
        _ frame: UnsafeMutablePointer<AVFrame>, damaged: Bool, origin: Double,
        into items: inout [MediaItem], timeline: inout Timeline, stats: inout DecodeStats
    ) {
        stats.videoFramesDecoded += 1
        // Without any timestamp, assume the frame follows the previous one at the declared rate.
        let time = frameSeconds(frame, timeBase: timeBase, origin: origin)
            ?? (lastTime.map { $0 + 1 / (declaredFPS ?? 25) } ?? 0)
        lastTime = time
        let segment = timeline.place(time, stream: index, into: &items, stats: &stats)
        stats.endTimestamp = max(stats.endTimestamp, time + 1 / (declaredFPS ?? 25))
        if let fps = options.fps {
            if segment != lastSegment {
                lastSegment = segment
                lastSlot = .min
            }
            // Grid slots of 1/fps seconds; the first frame in each slot is kept.
            let position = (time * fps + 1e-6).rounded(.down)
            let slot = position.isFinite ? Int64(max(-9e18, min(9e18, position))) : lastSlot
            guard slot > lastSlot else { return }
            lastSlot = slot
        }
        guard let picture = scaler.convert(frame) else {
            stats.unconvertibleFrames += 1
            return
        }
        stats.videoFramesDelivered += 1
        items.append(.video(VideoFrame(
            timestamp: time, segment: segment, width: picture.width, height: picture.height,
            pixels: picture.pixels, isDamaged: damaged)))
    }
}
