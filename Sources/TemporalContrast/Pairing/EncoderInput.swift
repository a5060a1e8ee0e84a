/// What an encoder's input is: how decoded frames and audio become the tensors it was trained on.
/// Training (the augmentation's normalisation), `embed` (the evaluation view of a frame, the audio
/// window arithmetic) and the export manifest all read it here, so they cannot drift apart.
public struct EncoderInput: Sendable, Equatable {
    public var video: Video
    public var audio: Audio

    public init(video: Video, audio: Audio) {
        self.video = video
        self.audio = audio
    }

    /// RGB frames, decoded with their short side scaled to `decodeShortSide` pixels at `fps`
    /// (0: the stream's own rate), then cropped and resized to `side × side`, scaled to [0, 1] and
    /// normalised per channel: `(pixel / 255 − mean[c]) / std[c]`.
    public struct Video: Sendable, Equatable {
        public var decodeShortSide: Int
        public var fps: Double
        /// Side of the square input, pixels.
        public var side: Int
        public var mean: [Float]
        public var std: [Float]

        public init(decodeShortSide: Int, fps: Double, side: Int, mean: [Float], std: [Float]) {
            self.decodeShortSide = decodeShortSide
            self.fps = fps
            self.side = side
            self.mean = mean
            self.std = std
        }

        /// Normalises an NHWC `side × side × 3` image with values in [0, 1], in place.
        public func normalize(_ hwc: inout [Float]) {
            precondition(hwc.count % 3 == 0)
            let m0 = mean[0], m1 = mean[1], m2 = mean[2]
            let r0 = 1 / std[0], r1 = 1 / std[1], r2 = 1 / std[2]
            for i in stride(from: 0, to: hwc.count, by: 3) {
                hwc[i] = (hwc[i] - m0) * r0
                hwc[i + 1] = (hwc[i + 1] - m1) * r1
                hwc[i + 2] = (hwc[i + 2] - m2) * r2
            }
        }

        /// The evaluation view of a frame (no augmentation): the centred square of side = the
        /// frame's short side, resized bilinearly (half-pixel centres) to `side`, normalised,
        /// as NCHW `[3, side, side]`.
        public func evaluationInput(_ view: ImageView) -> [Float] {
            let hwc = evaluationHWC(view)
            let plane = side * side
            var chw = [Float](repeating: 0, count: hwc.count)
            for i in 0..<plane {
                for c in 0..<3 { chw[c * plane + i] = hwc[i * 3 + c] }
            }
            return chw
        }

        /// `evaluationInput` in the layout the training networks take: HWC `[side, side, 3]`.
        public func evaluationHWC(_ view: ImageView) -> [Float] {
            let square = min(view.width, view.height)
            let box = ImageAugmentation.CropBox(x: (view.width - square) / 2, y: (view.height - square) / 2, width: square, height: square)
            var hwc = ImageAugmentation.resizedCrop(view, box: box, size: side)
            normalize(&hwc)
            return hwc
        }

        /// The manifest's description of this preprocessing (JSON values).
        public var manifest: [String: Any] {
            [
                "color": "RGB",
                "decode_short_side": decodeShortSide,
                "fps": fps,
                "crop": "centre square of the decoded frame (side = its short side), resized bilinearly (half-pixel centres) to input size",
                "input_size": side,
                "scale": "pixel / 255",
                "mean": mean, "std": std,
                "normalise": "(pixel / 255 - mean[c]) / std[c]",
            ]
        }
    }

    /// Mono audio at `sampleRate` as a log-mel spectrogram: periodic-Hann windows of
    /// `windowSamples` every `hopSamples`, `melBands` bands; one input is `frames` consecutive mel
    /// frames (`seconds` of audio), laid out `[band, frame]`.
    public struct Audio: Sendable, Equatable {
        public var sampleRate: Int
        public var windowSamples: Int
        public var hopSamples: Int
        public var melBands: Int
        public var seconds: Double

        /// 25 ms windows every 10 ms.
        public init(sampleRate: Int, melBands: Int, seconds: Double) {
            self.sampleRate = sampleRate
            windowSamples = sampleRate / 40
            hopSamples = sampleRate / 100
            self.melBands = melBands
            self.seconds = seconds
        }

        /// Seconds between consecutive mel frames.
        public var hopSeconds: Double { Double(hopSamples) / Double(sampleRate) }

        /// Mel frames in one input.
        public var frames: Int { Self.frames(seconds: seconds, hopSeconds: hopSeconds) }

        /// Mel frames that `seconds` of audio make at one frame per `hopSeconds` (at least one):
        /// the one rule for the audio input's length, in training pairs and in `embed`.
        public static func frames(seconds: Double, hopSeconds: Double) -> Int { max(1, Int((seconds / hopSeconds).rounded())) }

        /// Where mel frame 0 is stamped, after its first sample: the centre of its window.
        public var frameCentreOffset: Double { Double(windowSamples) / 2 / Double(sampleRate) }

        /// The manifest's description of this preprocessing (JSON values).
        public var manifest: [String: Any] {
            [
                "sample_rate": sampleRate, "channels": "mono (downmixed)",
                "window_samples": windowSamples, "hop_samples": hopSamples,
                "window_function": "periodic Hann", "fft_size": "next power of two >= window_samples",
                "mel_bands": melBands, "mel_scale": "HTK, 0 Hz to Nyquist, triangular filters, no area normalisation",
                "log": "natural log of (power + 1e-6)",
                "frames": frames, "window_seconds": seconds,
                "layout": "input[0, 0, band, frame]; frame i starts at sample i * hop_samples",
            ]
        }
    }
}
