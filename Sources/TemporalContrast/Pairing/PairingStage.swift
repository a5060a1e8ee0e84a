/// Turns one source's decoded timeline into training examples: temporal pairs, tracked-patch
/// pairs and audio-video pairs, at the configured rates. One per source, fed in arrival order
/// from that source's serial queue; it never blocks and holds only `historySeconds` of frames.
public struct PairingStage: Sendable {
    public let source: Int
    public let config: PairingConfig
    public private(set) var timeline: SourceTimeline
    private var rng: RandomSource
    private let sampler: TemporalPairSampler
    private let pairer: AudioVisualPairer
    private let tracker: PatchTracker
    private let selector: PatchSelector
    private var previousGray: GrayImage?
    private var tracks: [(track: PatchTracker.Track, start: ImageView, startTime: Double, segment: Int)] = []
    private var lastTemporal = -Double.infinity
    private var lastAudioVideo = -Double.infinity
    private var lastTrackStart = -Double.infinity
    /// Tracks that ended lost (for health reporting).
    public private(set) var lostTracks = 0

    public init(source: Int, config: PairingConfig, seed: UInt64) {
        self.source = source
        self.config = config
        timeline = SourceTimeline(source: source, horizon: config.historySeconds)
        rng = RandomSource(seed: seed)
        sampler = TemporalPairSampler(near: config.near, far: config.far)
        pairer = AudioVisualPairer(window: config.audioWindow, jitter: config.audioJitter)
        tracker = PatchTracker(patchSize: config.patchSize, searchRadius: config.searchRadius, minConfidence: config.minTrackConfidence)
        selector = PatchSelector(minMotion: config.minMotion, minTexture: config.minTexture)
    }

    /// Log-mel frames of this source's audio (feed them as they are decoded).
    public mutating func ingest(_ chunk: MelChunk) { timeline.append(chunk) }

    /// Takes the next frame; returns the examples that became complete with it.
    public mutating func ingest(_ frame: TimedFrame) -> [TrainingExample] {
        if let last = timeline.frames.last, last.segment != frame.segment {
            tracks.removeAll()
            previousGray = nil
        }
        timeline.append(frame)
        var out: [TrainingExample] = []
        trackPatches(frame, into: &out)
        // A rate of 0 emits nothing (its interval is infinite, and the first frame's distance from
        // the initial -infinity would be too).
        if config.temporalPerSecond > 0, frame.time - lastTemporal >= 1 / config.temporalPerSecond, let e = temporalExample(at: frame.time) {
            out.append(e)
            lastTemporal = Self.advance(lastTemporal, to: frame.time, every: 1 / config.temporalPerSecond)
        }
        if config.audioVideoPerSecond > 0, frame.time - lastAudioVideo >= 1 / config.audioVideoPerSecond, let e = audioVideoExample(at: frame.time) {
            out.append(e)
            lastAudioVideo = Self.advance(lastAudioVideo, to: frame.time, every: 1 / config.audioVideoPerSecond)
        }
        return out
    }

    /// The next emission time on a fixed schedule, so the average rate holds on any frame grid
    /// (restarting from `now` after a gap or at the start).
    static func advance(_ last: Double, to now: Double, every interval: Double) -> Double {
        last.isFinite && now - last < 2 * interval ? last + interval : now
    }

    /// The anchor lags `near` seconds behind the newest frame so positives on both sides exist.
    private mutating func temporalExample(at now: Double) -> TrainingExample? {
        let frames = timeline.frames
        guard let anchor = frames.lastIndex(where: { $0.time <= now - config.near }),
            let positive = sampler.positive(for: anchor, in: frames, rng: &rng)
        else { return nil }
        let a = frames[anchor], p = frames[positive]
        return TrainingExample(
            kind: .temporal, anchor: ImageView(width: a.width, height: a.height, pixels: a.pixels),
            positive: ImageView(width: p.width, height: p.height, pixels: p.pixels), audio: nil,
            origin: a.origin, positiveTime: p.time)
    }

    /// The frame lags enough that the audio window around it (with jitter) has been decoded.
    private mutating func audioVideoExample(at now: Double) -> TrainingExample? {
        guard timeline.melBands > 0 else { return nil }
        let lag = config.audioWindow / 2 + config.audioJitter + 0.2
        guard let index = timeline.frames.lastIndex(where: { $0.time <= now - lag }) else { return nil }
        let frame = timeline.frames[index]
        guard let (mel, centre) = pairer.audio(for: frame, in: timeline, rng: &rng) else { return nil }
        return TrainingExample(
            kind: .audioVideo, anchor: ImageView(width: frame.width, height: frame.height, pixels: frame.pixels),
            positive: nil, audio: mel, origin: frame.origin, positiveTime: centre)
    }

    private mutating func trackPatches(_ frame: TimedFrame, into out: inout [TrainingExample]) {
        guard frame.width >= config.patchSize, frame.height >= config.patchSize else { return }
        let gray = GrayImage(rgb: frame.pixels, width: frame.width, height: frame.height)
        let half = gray.halved()
        var alive: [(track: PatchTracker.Track, start: ImageView, startTime: Double, segment: Int)] = []
        for var t in tracks {
            switch tracker.update(&t.track, in: gray, half: half) {
            case .tracked:
                if frame.time - t.startTime >= config.trackDuration {
                    let x = Int(t.track.x.rounded()), y = Int(t.track.y.rounded())
                    out.append(TrainingExample(
                        kind: .tracked, anchor: t.start, positive: Self.crop(frame, x: x, y: y, size: config.patchSize),
                        audio: nil, origin: SampleOrigin(source: source, time: t.startTime), positiveTime: frame.time))
                } else {
                    alive.append(t)
                }
            case .lost:
                lostTracks += 1
            }
        }
        tracks = alive
        if let previous = previousGray, tracks.count < config.maxTracks, frame.time - lastTrackStart >= config.trackStartInterval {
            let taken = tracks.map { (x: Int($0.track.x), y: Int($0.track.y)) }
            if let at = selector.select(previous: previous, current: gray, patch: config.patchSize, avoiding: taken),
                let track = tracker.start(x: at.x, y: at.y, in: gray, half: half)
            {
                tracks.append((track, Self.crop(frame, x: at.x, y: at.y, size: config.patchSize), frame.time, frame.segment))
                lastTrackStart = frame.time
            }
        }
        previousGray = gray
    }

    /// The `size`×`size` RGB crop at (x, y), clamped inside the frame.
    static func crop(_ frame: TimedFrame, x: Int, y: Int, size: Int) -> ImageView {
        let x0 = max(0, min(frame.width - size, x)), y0 = max(0, min(frame.height - size, y))
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        for r in 0..<size {
            let src = ((y0 + r) * frame.width + x0) * 3
            for i in 0..<(size * 3) { pixels[r * size * 3 + i] = frame.pixels[src + i] }
        }
        return ImageView(width: size, height: size, pixels: pixels)
    }
}
