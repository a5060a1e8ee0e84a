/// Detects timestamp jumps across the streams of one input and numbers the segments.
///
/// A stream whose time moves back by more than `backward` seconds, or forward by more than
/// `forward`, starts a new segment. When audio and video jump together, the second stream to jump
/// joins the segment the first one opened instead of opening another.
struct Timeline {
    let forward: Double
    let backward: Double
    private(set) var current = 0
    private var boundaryTime: Double?
    private var last: [Int32: Double] = [:]
    private var streamSegment: [Int32: Int] = [:]

    init(forward: Double, backward: Double) {
        self.forward = forward
        self.backward = backward
    }

    /// The segment of an item at `time` on `stream`; appends a boundary item when one starts.
    mutating func place(_ time: Double, stream: Int32, into items: inout [MediaItem], stats: inout DecodeStats) -> Int {
        defer { last[stream] = time }
        guard let previous = last[stream] else {
            streamSegment[stream] = current
            return current
        }
        let jumpedBack = time < previous - backward
        let jumpedForward = time > previous + forward
        guard jumpedBack || jumpedForward else { return streamSegment[stream] ?? current }
        if let b = boundaryTime, (streamSegment[stream] ?? current) < current, abs(time - b) <= forward {
            streamSegment[stream] = current
            return current
        }
        current += 1
        boundaryTime = time
        streamSegment[stream] = current
        stats.segments += 1
        items.append(.segmentBoundary(SegmentBoundary(
            segment: current, timestamp: time, previousTimestamp: previous,
            reason: jumpedBack ? .backwardJump : .forwardJump)))
        return current
    }
}
