import Glibc
import Synchronization
import TemporalContrast

/// Counters that many stages bump and the summary, the systemd reporter (and later the metrics
/// endpoint) read: atomics, so no stage takes another stage's lock to report.
final class RunStatistics: Sendable {
    let temporalPairs = Atomic<Int>(0)
    let trackedPairs = Atomic<Int>(0)
    let audioVideoPairs = Atomic<Int>(0)
    let filesOK = Atomic<Int>(0)
    let filesBad = Atomic<Int>(0)
    /// Failures that may pass (permission, I/O): each one is retried.
    let filesFailed = Atomic<Int>(0)
    /// Frames live sources dropped at their hand-off (the reader never waits for pairing).
    let droppedFrames = Atomic<Int>(0)
    /// Examples the trainer took into steps, and of each kind.
    let pairsTrained = Atomic<Int>(0)
    let temporalTrained = Atomic<Int>(0)
    let trackedTrained = Atomic<Int>(0)
    let audioVideoTrained = Atomic<Int>(0)
    let checkpointFailures = Atomic<Int>(0)
    /// Updates skipped in this run because the loss or a gradient was not finite.
    let skippedUpdates = Atomic<Int>(0)
    /// Files queued or being read.
    let filesPending = Atomic<Int>(0)
    /// The replay buffer as of its last change.
    let bufferEntries = Atomic<Int>(0)
    let bufferBytes = Atomic<Int>(0)
    let bufferEvictions = Atomic<Int>(0)

    var pairs: RunSummary.Pairs {
        .init(temporal: temporalPairs.load(ordering: .relaxed), tracked: trackedPairs.load(ordering: .relaxed),
              audio_video: audioVideoPairs.load(ordering: .relaxed))
    }

    var files: RunSummary.Files {
        .init(ok: filesOK.load(ordering: .relaxed), bad: filesBad.load(ordering: .relaxed), failed: filesFailed.load(ordering: .relaxed))
    }

    func countTrained(_ examples: [TrainingExample]) {
        pairsTrained.add(examples.count, ordering: .relaxed)
        for e in examples {
            switch e.kind {
            case .temporal: temporalTrained.add(1, ordering: .relaxed)
            case .tracked: trackedTrained.add(1, ordering: .relaxed)
            case .audioVideo: audioVideoTrained.add(1, ordering: .relaxed)
            }
        }
    }

    func trained(_ kind: PairKind) -> Int {
        switch kind {
        case .temporal: temporalTrained.load(ordering: .relaxed)
        case .tracked: trackedTrained.load(ordering: .relaxed)
        case .audioVideo: audioVideoTrained.load(ordering: .relaxed)
        }
    }

    func publish(_ buffer: ReplayBuffer) {
        bufferEntries.store(buffer.count, ordering: .relaxed)
        bufferBytes.store(buffer.byteCount, ordering: .relaxed)
        bufferEvictions.store(buffer.evicted, ordering: .relaxed)
    }

    func countProduced(_ kind: PairKind) {
        switch kind {
        case .temporal: temporalPairs.add(1, ordering: .relaxed)
        case .tracked: trackedPairs.add(1, ordering: .relaxed)
        case .audioVideo: audioVideoPairs.add(1, ordering: .relaxed)
        }
    }
}

/// A monotonic instant shared between threads, as nanoseconds of `ContinuousClock`-like uptime
/// (CLOCK_MONOTONIC): a heartbeat one thread sets and another reads.
final class Heartbeat: Sendable {
    private let nanoseconds = Atomic<Int64>(Heartbeat.now)

    static var now: Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }

    func beat() { nanoseconds.store(Self.now, ordering: .relaxed) }

    /// Seconds since the last beat.
    var age: Double { Double(Self.now - nanoseconds.load(ordering: .relaxed)) / 1e9 }
}
