import StreamDecode
import TemporalContrast

/// Converts StreamDecode's values into the pairing stage's, so neither library imports the other.
enum DecodeBridge {
    static func frame(_ f: VideoFrame, source: Int) -> TimedFrame {
        TimedFrame(source: source, segment: f.segment, time: f.timestamp, width: f.width, height: f.height, pixels: f.pixels)
    }

    /// Log-mel frames of a source's audio, fed chunk by chunk: keeps the samples not yet covered by
    /// a whole window and emits the mel frames that became computable. Restarts on a new segment or
    /// a gap, so mel frames never straddle a discontinuity.
    struct MelStream {
        let spectrogram: LogMelSpectrogram
        let source: Int
        private var pending: [Float] = []
        private var pendingStart = 0.0
        private var segment = -1

        init(spectrogram: LogMelSpectrogram, source: Int) {
            self.spectrogram = spectrogram
            self.source = source
        }

        mutating func append(_ chunk: AudioChunk) -> MelChunk? {
            let options = spectrogram.options
            let rate = Double(options.sampleRate)
            let expected = pendingStart + Double(pending.count) / rate
            if chunk.segment != segment || abs(chunk.timestamp - expected) > 2 / rate {
                pending = []
                pendingStart = chunk.timestamp
                segment = chunk.segment
            }
            pending += chunk.samples
            let frames = spectrogram.frameCount(sampleCount: pending.count)
            guard frames > 0 else { return nil }
            let values = spectrogram.compute(Array(pending.prefix((frames - 1) * options.hop + options.window)))
            // A mel frame is stamped with the time of its window's centre.
            let start = pendingStart + Double(options.window) / 2 / rate
            let consumed = frames * options.hop
            pending.removeFirst(consumed)
            let result = MelChunk(source: source, segment: segment, time: start, hop: Double(options.hop) / rate, bands: options.melBands, values: values)
            pendingStart += Double(consumed) / rate
            return result
        }
    }
}
