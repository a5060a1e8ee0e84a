import DaemonRuntime
import StreamDecode
import TemporalContrast

/// The encoder input the config describes; decoding, log-mel, training, `embed` and `export`'s
/// manifest all derive from it, so the encoder always sees inputs made the same way.
extension DaemonConfig {
    var encoderInput: EncoderInput {
        EncoderInput(
            video: .init(decodeShortSide: size, fps: fps, side: pairing.image.outputSize, mean: pairing.image.mean, std: pairing.image.std),
            audio: .init(sampleRate: sampleRate, melBands: melBands, seconds: pairing.audioWindow))
    }

    var videoOptions: VideoOptions {
        let v = encoderInput.video
        return VideoOptions(size: .shortSide(v.decodeShortSide), fps: v.fps > 0 ? v.fps : nil)
    }

    var logMelOptions: LogMelOptions { encoderInput.audio.logMelOptions }
}

extension EncoderInput.Audio {
    /// The log-mel spectrogram this input is made of.
    var logMelOptions: LogMelOptions {
        var m = LogMelOptions()
        m.sampleRate = sampleRate
        m.window = windowSamples
        m.hop = hopSamples
        m.melBands = melBands
        return m
    }
}

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
        let input: EncoderInput.Audio
        let source: Int
        private var pending: [Float] = []
        private var pendingStart = 0.0
        private var segment = -1

        init(input: EncoderInput.Audio, source: Int) throws(DecodeError) {
            spectrogram = try LogMelSpectrogram(options: input.logMelOptions)
            self.input = input
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
            let start = pendingStart + input.frameCentreOffset
            let consumed = frames * options.hop
            pending.removeFirst(consumed)
            let result = MelChunk(source: source, segment: segment, time: start, hop: input.hopSeconds, bands: options.melBands, values: values)
            pendingStart += Double(consumed) / rate
            return result
        }
    }
}

/// A source's id: a hash of its path or URL (24 bits, so checkpoints store it exactly as float32),
/// the same in every run and every epoch. Masking and batch spreading use it; a rare collision
/// only merges two sources.
enum SourceID {
    static func of(_ key: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01b3
        }
        return Int(h & 0xFF_FFFF)
    }
}

/// One source's pairing stage fed with decoded items: frames as they come, audio through its
/// log-mel stream. `segmentOffset` moves every item into its own stretch of timeline (a file's
/// epoch), so nothing pairs across two readings.
struct SourcePairing {
    private var stage: PairingStage
    private var mel: DecodeBridge.MelStream
    private let source: Int
    private let segmentOffset: Int

    init(source: Int, config: DaemonConfig, seedOffset: UInt64 = 0, segmentOffset: Int = 0) {
        self.source = source
        self.segmentOffset = segmentOffset
        stage = PairingStage(source: source, config: config.pairing, seed: UInt64(config.seed) &+ UInt64(source) &* 7919 &+ seedOffset)
        // The config's validation checked these log-mel parameters.
        mel = try! DecodeBridge.MelStream(input: config.encoderInput.audio, source: source)
    }

    /// The examples `item` completes (only frames complete any).
    mutating func ingest(_ item: MediaItem) -> [TrainingExample] {
        switch item {
        case .video(let f):
            var frame = DecodeBridge.frame(f, source: source)
            frame.segment += segmentOffset
            return stage.ingest(frame)
        case .audio(let chunk):
            if var m = mel.append(chunk) {
                m.segment += segmentOffset
                stage.ingest(m)
            }
            return []
        case .segmentBoundary:
            return []
        }
    }
}

extension DaemonConfig {
    /// How sources decode: the encoder's input size and rate, audio for log-mel, timeouts.
    func decodeOptions(live: Bool) -> DecodeOptions {
        var o = DecodeOptions()
        o.video = videoOptions
        o.audio = AudioOptions(sampleRate: sampleRate, chunkSamples: sampleRate / 10)
        o.decoderThreads = decoderThreads
        o.ioTimeout = liveTimeout
        o.fileTimeout = fileTimeout
        return o
    }
}
