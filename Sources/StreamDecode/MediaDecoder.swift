internal import CFFmpeg

/// Pull-based decoder for one input: call `next()` until it returns nil.
///
/// Items come in decode order: RGB video frames, mono audio chunks, and segment boundaries when
/// the timeline jumps. Timestamps are seconds since the input's start (the container's
/// `start_time`, the earliest stream start), so audio and video share one clock.
///
/// Not thread-safe: use one decoder from one thread (or serial queue) at a time. The only call
/// that may come from another thread is `interruptHandle.interrupt()`, which makes a blocked
/// `next()` return promptly with `.interrupted`.
public final class MediaDecoder {
    public let source: MediaSource
    public let options: DecodeOptions
    public let info: MediaInfo
    public private(set) var stats = DecodeStats()
    /// Stops this decoder from any thread.
    public let interruptHandle: DecodeInterrupt

    private let format: FormatContext
    private let packet = Packet()
    private let frame = Frame()
    private var video: VideoTrack?
    private var audio: AudioTrack?
    private let originSeconds: Double

    private var pending: [MediaItem] = []
    private var pendingHead = 0
    private var ended = false
    /// An error met while reading; raised once the items decoded before it are delivered.
    private var deferredError: DecodeError?
    private var consecutiveReadErrors = 0
    private var readErrors = 0
    /// Set when audio conversion failed: video goes on, the error is raised at the end.
    private var audioError: DecodeError?
    private var timeline: Timeline

    /// Opens `location` (a path, a URL, or `-` for stdin) and its best video and audio streams.
    public convenience init(
        _ location: String, options: DecodeOptions = DecodeOptions(), interrupt: DecodeInterrupt = DecodeInterrupt()
    ) throws(DecodeError) {
        try self.init(source: MediaSource(location), options: options, interrupt: interrupt)
    }

    /// Opens `source`. Pass your own `interrupt` to be able to abort a blocked open from another
    /// thread; it becomes `interruptHandle`.
    public init(
        source: MediaSource, options: DecodeOptions = DecodeOptions(), interrupt: DecodeInterrupt = DecodeInterrupt()
    ) throws(DecodeError) {
        try options.validate(input: source.location)
        self.source = source
        self.options = options
        interruptHandle = interrupt
        timeline = Timeline(forward: options.forwardJumpThreshold, backward: options.backwardJumpTolerance)
        let format = try FormatContext(source: source, options: options, interrupt: interrupt)
        self.format = format
        let ctx = format.pointer
        let input = source.location

        var decoderMissing: DecodeError?
        func open(_ type: AVMediaType) throws(DecodeError) -> (Int32, CodecContext)? {
            var codec: UnsafePointer<AVCodec>?
            let index = av_find_best_stream(ctx, type, -1, -1, &codec, 0)
            if index == cffmpeg_averror_decoder_not_found() {
                decoderMissing = decodeError(index, call: "av_find_best_stream", input: input)
                return nil
            }
            guard index >= 0, let codec, let stream = ctx.pointee.streams[Int(index)] else { return nil }
            // Cover art in audio files is a one-picture "video" stream; it is not video.
            if type == AVMEDIA_TYPE_VIDEO && (stream.pointee.disposition & AV_DISPOSITION_ATTACHED_PIC) != 0 {
                return nil
            }
            let threads = type == AVMEDIA_TYPE_VIDEO ? options.decoderThreads : 1
            return (index, try CodecContext(stream: stream, codec: codec, threads: threads, input: input))
        }

        let videoCodec = options.video != nil ? try open(AVMEDIA_TYPE_VIDEO) : nil
        let audioCodec = options.audio != nil ? try open(AVMEDIA_TYPE_AUDIO) : nil
        if videoCodec == nil && audioCodec == nil {
            if let decoderMissing { throw decoderMissing }
            let wanted = [options.video != nil ? "video" : nil, options.audio != nil ? "audio" : nil]
                .compactMap { $0 }.joined(separator: " or ")
            throw DecodeError(
                kind: .noStreams, input: input, call: "av_find_best_stream",
                code: cffmpeg_averror_stream_not_found(), message: "no decodable \(wanted) stream in the input")
        }

        let start = ctx.pointee.start_time
        originSeconds = start != AVCode.noPTS ? Double(start) / Double(AV_TIME_BASE) : 0

        var mediaInfo = MediaInfo(
            format: String(cString: ctx.pointee.iformat.pointee.name),
            duration: ctx.pointee.duration > 0 ? Double(ctx.pointee.duration) / Double(AV_TIME_BASE) : nil)
        if let (index, codec) = videoCodec, let videoOptions = options.video {
            let stream = ctx.pointee.streams[Int(index)]!
            let track = VideoTrack(index: index, codec: codec, stream: stream, options: videoOptions)
            video = track
            let par = stream.pointee.codecpar.pointee
            mediaInfo.video = MediaInfo.Video(
                codec: String(cString: avcodec_get_name(par.codec_id)), width: Int(par.width),
                height: Int(par.height), fps: track.declaredFPS)
        }
        if let (index, codec) = audioCodec, let audioOptions = options.audio {
            let stream = ctx.pointee.streams[Int(index)]!
            audio = AudioTrack(index: index, codec: codec, stream: stream, options: audioOptions, input: input)
            let par = stream.pointee.codecpar.pointee
            mediaInfo.audio = MediaInfo.Audio(
                codec: String(cString: avcodec_get_name(par.codec_id)), sampleRate: Int(par.sample_rate),
                channels: Int(par.ch_layout.nb_channels))
        }
        info = mediaInfo
        // Only read what we decode: the demuxer drops packets of discarded streams early.
        for i in 0..<Int(ctx.pointee.nb_streams) where Int32(i) != video?.index && Int32(i) != audio?.index {
            ctx.pointee.streams[i]?.pointee.discard = AVDISCARD_ALL
        }
    }

    /// Shorthand for `interruptHandle.interrupt()`.
    public func interrupt() { interruptHandle.interrupt() }

    /// The next decoded item, or nil at the end of the input.
    ///
    /// Damaged packets are counted in `stats.corruptPackets` and skipped. A fatal error (timeout,
    /// lost connection) is thrown after every item decoded before it has been returned; an
    /// `interrupt()` is thrown at once.
    public func next() throws(DecodeError) -> MediaItem? {
        while true {
            if pendingHead < pending.count {
                let item = pending[pendingHead]
                pendingHead += 1
                if pendingHead == pending.count {
                    pending.removeAll(keepingCapacity: true)
                    pendingHead = 0
                }
                return item
            }
            if ended {
                if let error = deferredError {
                    deferredError = nil
                    throw error
                }
                return nil
            }
            try step()
        }
    }

    /// Reads one packet and decodes it, or flushes everything at the end of input.
    private func step() throws(DecodeError) {
        let interrupt = interruptHandle
        if interrupt.isInterrupted { throw interruptedError(call: "av_read_frame") }
        let timeout = options.callTimeout(for: source)
        let abortsBefore = interrupt.deadlineAbortCount
        interrupt.arm(seconds: timeout)
        let status = av_read_frame(format.pointer, packet.pointer)
        if status < 0 {
            let reason = interrupt.reason
            if reason == .closed || interrupt.isInterrupted { throw interruptedError(call: "av_read_frame") }
            if status == AVCode.eof {
                // Demuxers that read through nested I/O (HLS) report an aborted read as the end of
                // the input: if the deadline fired during this call, the input was cut, not done.
                if interrupt.deadlineAbortCount != abortsBefore {
                    deferredError = DecodeError(
                        kind: .timedOut, input: source.location, call: "av_read_frame", code: AVCode.exit,
                        message: "a read took longer than the \(timeout) s deadline and ended the input early")
                }
                finish()
                return
            }
            let error = decodeError(status, call: "av_read_frame", input: source.location, interrupt: reason)
            // Damaged data in a file: skip it and keep reading, up to a limit. Anything else
            // (timeouts, lost connections, I/O errors) ends the input once decoded items are out.
            if status == AVCode.invalidData && consecutiveReadErrors < options.maxConsecutiveReadErrors {
                consecutiveReadErrors += 1
                readErrors += 1
                stats.corruptPackets += 1
                return
            }
            deferredError = error
            finish()
            return
        }
        consecutiveReadErrors = 0
        stats.packetsRead += 1
        defer { packet.unref() }
        if (packet.pointer.pointee.flags & AV_PKT_FLAG_CORRUPT) != 0 { stats.corruptPackets += 1 }
        let index = packet.pointer.pointee.stream_index
        if index == video?.index {
            try decode(packet.pointer, video: true)
        } else if index == audio?.index && audioError == nil {
            try decode(packet.pointer, video: false)
        }
    }

    private func interruptedError(call: String) -> DecodeError {
        DecodeError(
            kind: .interrupted, input: source.location, call: call, code: AVCode.exit,
            message: "interrupted by the caller")
    }

    /// End of input: drain the decoders (frame threading holds frames back) and the resampler.
    private func finish() {
        guard !ended else { return }
        ended = true
        if video != nil { try? decode(nil, video: true) }
        if audio != nil && audioError == nil {
            try? decode(nil, video: false)
            audio!.flush(into: &pending, timeline: &timeline, stats: &stats)
        }
        if deferredError == nil { deferredError = audioError }
        checkTruncation()
    }

    /// A local file whose reads failed and whose decoded content stops well short of the duration
    /// its container declares was cut off. (Without read errors a short decode is more likely an
    /// estimated duration, as in VBR MP3 without an index, and is not flagged.)
    private func checkTruncation() {
        guard source.kind == .file, deferredError == nil, let declared = info.duration,
            readErrors > 0 || stats.corruptPackets > 0, stats.endTimestamp < declared * 0.9 - 0.5
        else { return }
        let decoded = (stats.endTimestamp * 100).rounded() / 100, whole = (declared * 100).rounded() / 100
        deferredError = DecodeError(
            kind: .truncated, input: source.location, call: "av_read_frame",
            message: "file ends early: decoded \(decoded) s of the \(whole) s the container declares")
    }

    /// One send/receive round. `packet == nil` sends the flush packet and drains to EOF.
    private func decode(_ packet: UnsafeMutablePointer<AVPacket>?, video isVideo: Bool) throws(DecodeError) {
        let codec = isVideo ? video!.codec.pointer : audio!.codec.pointer
        var sent = avcodec_send_packet(codec, packet)
        if sent == AVCode.again {
            // Not expected (we always drain after sending), but the API allows it.
            try receive(codec, video: isVideo)
            sent = avcodec_send_packet(codec, packet)
        }
        if sent < 0 && sent != AVCode.eof {
            stats.corruptPackets += 1
            if packet == nil { return }
        }
        try receive(codec, video: isVideo)
    }

    private func receive(_ codec: UnsafeMutablePointer<AVCodecContext>, video isVideo: Bool) throws(DecodeError) {
        var errors = 0
        while true {
            let status = avcodec_receive_frame(codec, frame.pointer)
            if status == AVCode.again || status == AVCode.eof { return }
            if status < 0 {
                // A frame the decoder could not reconstruct; later frames may still decode.
                stats.corruptPackets += 1
                errors += 1
                if errors > 16 { return }
                continue
            }
            defer { frame.unref() }
            let f = frame.pointer.pointee
            let damaged = (f.flags & AV_FRAME_FLAG_CORRUPT) != 0 || f.decode_error_flags != 0
            if damaged { stats.damagedFrames += 1 }
            if isVideo {
                video!.handle(frame.pointer, damaged: damaged, origin: originSeconds, into: &pending, timeline: &timeline, stats: &stats)
            } else if audioError == nil {
                do {
                    try audio!.handle(frame.pointer, origin: originSeconds, into: &pending, timeline: &timeline, stats: &stats)
                } catch {
                    // The audio cannot be converted; keep decoding the video and report it at the end.
                    audioError = error
                }
            }
        }
    }
}

/// Picks a frame's timestamp (best_effort_timestamp, else pts, else dts) in seconds since `origin`.
func frameSeconds(_ frame: UnsafeMutablePointer<AVFrame>, timeBase: Double, origin: Double) -> Double? {
    let f = frame.pointee
    var ts = f.best_effort_timestamp
    if ts == AVCode.noPTS { ts = f.pts }
    if ts == AVCode.noPTS { ts = f.pkt_dts }
    if ts == AVCode.noPTS { return nil }
    return Double(ts) * timeBase - origin
}

func seconds(_ q: AVRational) -> Double { q.den == 0 ? 0 : Double(q.num) / Double(q.den) }
