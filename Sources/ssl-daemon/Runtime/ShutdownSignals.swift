import Foundation
import Glibc
import ServiceLifecycle
import UnixSignals

/// SIGTERM and SIGINT, trapped from the moment `run` starts: the first asks for a graceful
/// shutdown (kept if it comes before the service group exists, e.g. while checkpoints load, and
/// applied as soon as the group runs); a second one exits at once (checkpoints are atomic, so the
/// last one is intact).
final class ShutdownSignals: Sendable {
    private struct State {
        var received = 0
        var group: ServiceGroup?
    }
    private let state = Shared(State())

    /// Starts trapping (swift-service-lifecycle's UnixSignalsSequence; it takes over the signals'
    /// disposition, so none of them kills the process from here on).
    static func trap() async -> ShutdownSignals {
        let signals = ShutdownSignals()
        let sequence = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        Task {
            for await _ in sequence {
                let (received, group) = signals.state.mutate { s in
                    s.received += 1
                    return (s.received, s.group)
                }
                if received > 1 {
                    FileHandle.standardError.write(Data("ssl-daemon: second signal: exiting now\n".utf8))
                    _exit(1)
                }
                await group?.triggerGracefulShutdown()
            }
        }
        return signals
    }

    /// Signals after this only count towards the second-signal exit (the group has finished).
    func detach() { state.mutate { $0.group = nil } }

    /// The group to shut down on a signal; shuts it down at once if one came already.
    func attach(_ group: ServiceGroup) async {
        let pending = state.mutate { s in
            s.group = group
            return s.received > 0
        }
        if pending { await group.triggerGracefulShutdown() }
    }
}
