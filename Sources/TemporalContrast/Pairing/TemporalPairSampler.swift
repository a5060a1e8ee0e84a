/// CPC-style temporal pairs: an anchor frame, a positive within `near` seconds of it, and
/// same-source negatives more than `far` seconds away, never across a segment boundary.
///
/// Frames are given in arrival order (one source, increasing time within a segment). Negatives from
/// other sources and from the key queue are added by the batcher and the objective.
public struct TemporalPairSampler: Sendable, Equatable {
    /// Positives lie within ±near seconds of the anchor (default 0.5 s).
    public var near: Double
    /// Same-source negatives lie more than `far` seconds from the anchor (default 10 s).
    public var far: Double

    public init(near: Double = 0.5, far: Double = 10) {
        precondition(near > 0 && far > near, "TemporalPairSampler: need 0 < near < far")
        self.near = near
        self.far = far
    }

    /// Index of a random positive for `frames[anchor]`: another frame of the same segment with
    /// 0 < |Δt| ≤ near. Nil when there is none.
    public func positive(for anchor: Int, in frames: [TimedFrame], rng: inout RandomSource) -> Int? {
        let a = frames[anchor]
        var candidates: [Int] = []
        var i = anchor - 1
        while i >= 0, frames[i].segment == a.segment, a.time - frames[i].time <= near {
            if frames[i].time != a.time { candidates.append(i) }
            i -= 1
        }
        i = anchor + 1
        while i < frames.count, frames[i].segment == a.segment, frames[i].time - a.time <= near {
            if frames[i].time != a.time { candidates.append(i) }
            i += 1
        }
        return candidates.isEmpty ? nil : candidates[rng.index(below: candidates.count)]
    }

    /// Up to `count` indices of same-segment frames more than `far` seconds from `frames[anchor]`
    /// (empty when the source's history is shorter than that).
    public func negatives(for anchor: Int, in frames: [TimedFrame], count: Int, rng: inout RandomSource) -> [Int] {
        let a = frames[anchor]
        let candidates = frames.indices.filter { frames[$0].segment == a.segment && abs(frames[$0].time - a.time) > far }
        guard !candidates.isEmpty else { return [] }
        return (0..<min(count, candidates.count)).map { _ in candidates[rng.index(below: candidates.count)] }
    }
}

/// Audio-video correspondence: a frame at t and the log-mel window of `window` seconds centred on
/// t + u, u uniform in ±jitter, from the same source and segment.
public struct AudioVisualPairer: Sendable, Equatable {
    /// Length of the audio window in seconds (default 1 s).
    public var window: Double
    /// Largest random offset of the window centre from the frame time, in seconds (default 0.1 s).
    public var jitter: Double

    public init(window: Double = 1, jitter: Double = 0.1) {
        self.window = window
        self.jitter = jitter
    }

    /// The audio window for `frame`, and the time its centre lands on; nil when the source has no
    /// audio there (a video-only source simply yields none).
    public func audio(for frame: TimedFrame, in timeline: SourceTimeline, rng: inout RandomSource) -> (MelView, centre: Double)? {
        guard timeline.melBands > 0 else { return nil }
        let frames = EncoderInput.Audio.frames(seconds: window, hopSeconds: timeline.melHop)
        let centre = frame.time + (jitter > 0 ? Double(rng.uniform(Float(-jitter), Float(jitter))) : 0)
        let start = centre - Double(frames) * timeline.melHop / 2
        guard let view = timeline.melWindow(start: start, frames: frames, segment: frame.segment) else { return nil }
        return (view, centre)
    }
}
