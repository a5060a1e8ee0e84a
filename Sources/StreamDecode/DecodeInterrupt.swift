internal import CFFmpeg
import Glibc
import Synchronization

enum InterruptReason: UInt8, Sendable { case none = 0, deadline = 1, closed = 2 }

/// The state FFmpeg's AVIOInterruptCB polls: a monotonic deadline re-armed before each blocking
/// call, and a close flag another thread may set. Shared by reference with the C callback.
public final class DecodeInterrupt: Sendable {
    /// CLOCK_MONOTONIC nanoseconds after which blocking calls abort; 0 means no deadline.
    private let deadline = Atomic<UInt64>(0)
    private let closed = Atomic<Bool>(false)
    /// Why the callback last returned 1, so errors can say "timed out" or "interrupted". Never
    /// cleared: FFmpeg's I/O errors are sticky, so a later call may return the AVERROR_EXIT of an
    /// earlier abort without consulting the callback again.
    private let fired = Atomic<UInt8>(InterruptReason.none.rawValue)
    /// How many times the deadline aborted a call, so a caller can tell whether it fired during
    /// one particular call even when FFmpeg reports that abort as something else (end of input).
    private let deadlineAborts = Atomic<UInt64>(0)

    public init() {}

    /// Asks the decoder to stop: a blocked open or read returns promptly with `.interrupted`, and
    /// every later call fails the same way. Safe from any thread.
    public func interrupt() { closed.store(true, ordering: .releasing) }

    public var isInterrupted: Bool { closed.load(ordering: .acquiring) }

    /// Arms the deadline `seconds` from now, or clears it when nil.
    func arm(seconds: Double?) {
        guard let seconds else {
            deadline.store(0, ordering: .relaxed)
            return
        }
        let nanos = seconds.isFinite ? min(max(0, seconds), 1e9) * 1e9 : 1e18
        deadline.store(Self.monotonicNanos() &+ UInt64(nanos), ordering: .relaxed)
    }

    var reason: InterruptReason { InterruptReason(rawValue: fired.load(ordering: .relaxed)) ?? .none }

    /// The number of calls the deadline has aborted so far (see `deadlineAborts`).
    var deadlineAbortCount: UInt64 { deadlineAborts.load(ordering: .relaxed) }

    /// Called by FFmpeg, possibly from its own threads: nonzero aborts the blocking call.
    func shouldAbort() -> Bool {
        if closed.load(ordering: .acquiring) {
            fired.store(InterruptReason.closed.rawValue, ordering: .relaxed)
            return true
        }
        let d = deadline.load(ordering: .relaxed)
        if d != 0 && Self.monotonicNanos() >= d {
            fired.store(InterruptReason.deadline.rawValue, ordering: .relaxed)
            deadlineAborts.add(1, ordering: .relaxed)
            return true
        }
        return false
    }

    static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// The AVIOInterruptCB for this state. The opaque pointer is unretained: the owner of the
    /// AVFormatContext keeps this object alive for as long as the context exists.
    var callback: AVIOInterruptCB {
        AVIOInterruptCB(
            callback: { opaque in
                guard let opaque else { return 0 }
                return Unmanaged<DecodeInterrupt>.fromOpaque(opaque).takeUnretainedValue().shouldAbort() ? 1 : 0
            },
            opaque: Unmanaged.passUnretained(self).toOpaque())
    }
}
