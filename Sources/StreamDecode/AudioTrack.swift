internal import CFFmpeg

/// The audio stream being decoded: its decoder, resampler, and the chunking of mono output.
struct AudioTrack {
    let index: Int32
    let codec: CodecContext
    let timeBase: Double
    let options: AudioOptions
    let resampler: AudioResampler
    /// Resampled samples not yet delivered, and the time of the first of them.
    private var buffer: [Float] = []
    private var bufferStart: Double?
    private var segment = 0
    /// A gap or overlap larger than this (seconds) between where the next input frame should
    /// start and where it does start re-anchors the output clock.
    private static let driftTolerance = 0.1

    init(index: Int32, codec: CodecContext, stream: UnsafeMutablePointer<AVStream>, options: AudioOptions, input: String) {
        self.index = index
        self.codec = codec
        self.options = options
        timeBase = seconds(stream.pointee.time_base)
        resampler = AudioResampler(outputRate: options.sampleRate, input: input)
        buffer.reserveCapacity(options.chunkSamples * 2)
    }

    private var rate: Double { Double(options.sampleRate) }

    mutating func handle(
        _ frame: UnsafeMutablePointer<AVFrame>, origin: Double,
        into items: inout [MediaItem], timeline: inout Timeline, stats: inout DecodeStats
    ) throws(DecodeError) {
        let samples = Int(frame.pointee.nb_samples)
        guard samples > 0 else { return }
        stats.audioSamplesDecoded += samples
        // Where this frame should start if the audio were continuous.
        let expected = bufferStart.map { $0 + Double(buffer.count + resampler.bufferedOutputSamples) / rate }
        let time = frameSeconds(frame, timeBase: timeBase, origin: origin) ?? expected ?? 0
        let newSegment = timeline.place(time, stream: index, into: &items, stats: &stats)
        if let expected, newSegment != segment || abs(time - expected) > Self.driftTolerance {
            // Discontinuity: deliver what belongs to the old stretch, then restart the clock here.
            resampler.flush(appendingTo: &buffer)
            emit(all: true, into: &items, stats: &stats)
            bufferStart = nil
        }
        segment = newSegment
        if bufferStart == nil { bufferStart = time }
        try resampler.convert(frame, appendingTo: &buffer)
        stats.endTimestamp = max(stats.endTimestamp, time + Double(samples) / Double(frame.pointee.sample_rate))
        emit(all: false, into: &items, stats: &stats)
    }

    /// End of input: the resampler's tail and the last partial chunk.
    mutating func flush(into items: inout [MediaItem], timeline: inout Timeline, stats: inout DecodeStats) {
        resampler.flush(appendingTo: &buffer)
        emit(all: true, into: &items, stats: &stats)
    }

    /// Delivers whole chunks; with `all`, also the partial remainder.
    private mutating func emit(all: Bool, into items: inout [MediaItem], stats: inout DecodeStats) {
        guard var start = bufferStart else { return }
        let size = options.chunkSamples
        var offset = 0
        while buffer.count - offset >= size || (all && offset < buffer.count) {
            let n = min(size, buffer.count - offset)
            items.append(.audio(AudioChunk(
                timestamp: start, segment: segment, sampleRate: options.sampleRate,
                samples: Array(buffer[offset..<(offset + n)]))))
            stats.audioSamplesDelivered += n
            offset += n
            start += Double(n) / rate
        }
        if offset > 0 {
            buffer.removeFirst(offset)
            bufferStart = start
        }
    }
}
