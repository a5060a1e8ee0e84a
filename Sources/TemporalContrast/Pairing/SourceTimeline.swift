/// The recent past of one source: frames and log-mel frames, oldest dropped beyond `horizon`
/// seconds, kept per segment so nothing is paired across a reconnect or a timestamp jump.
public struct SourceTimeline: Sendable {
    public let source: Int
    /// Seconds of history kept behind the newest item.
    public let horizon: Double
    public private(set) var frames: [TimedFrame] = []
    /// Mel frames of the current segment, contiguous from `melStart` every `melHop` seconds.
    public private(set) var mel: [Float] = []
    public private(set) var melBands = 0
    public private(set) var melStart = 0.0
    public private(set) var melHop = 0.01
    public private(set) var melSegment = -1

    public init(source: Int, horizon: Double) {
        self.source = source
        self.horizon = horizon
    }

    /// Appends a frame; frames of an older segment are dropped when a new segment starts.
    public mutating func append(_ frame: TimedFrame) {
        if let last = frames.last, last.segment != frame.segment { frames.removeAll(keepingCapacity: true) }
        frames.append(frame)
        let cutoff = frame.time - horizon
        if let first = frames.first, first.time < cutoff {
            frames.removeFirst(frames.firstIndex { $0.time >= cutoff } ?? frames.count)
        }
    }

    /// Appends log-mel frames. A new segment, a gap, or a change of shape starts the mel history
    /// afresh (windows must be contiguous audio).
    public mutating func append(_ chunk: MelChunk) {
        let expected = melStart + Double(mel.count / max(1, melBands)) * melHop
        if chunk.segment != melSegment || chunk.bands != melBands || abs(chunk.hop - melHop) > 1e-9
            || abs(chunk.time - expected) > chunk.hop * 1.5 {
            mel = []
            melBands = chunk.bands
            melHop = chunk.hop
            melStart = chunk.time
            melSegment = chunk.segment
        }
        mel += chunk.values
        let keep = Int(horizon / melHop) * melBands
        if mel.count > keep + 100 * melBands {
            let drop = (mel.count - keep) / melBands
            mel.removeFirst(drop * melBands)
            melStart += Double(drop) * melHop
        }
    }

    /// `frames` mel frames starting at the one nearest `start` seconds, if the current segment's
    /// audio covers them.
    public func melWindow(start: Double, frames count: Int, segment: Int) -> MelView? {
        guard segment == melSegment, melBands > 0 else { return nil }
        let first = Int(((start - melStart) / melHop).rounded())
        guard first >= 0, (first + count) * melBands <= mel.count else { return nil }
        return MelView(frames: count, bands: melBands, values: Array(mel[(first * melBands)..<((first + count) * melBands)]))
    }
}
