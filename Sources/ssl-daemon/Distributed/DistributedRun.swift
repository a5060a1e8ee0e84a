import DaemonRuntime
import Foundation
import Glibc
import Logging
import TemporalContrast

/// This process's part in a job of several ranks under `mpirun`: the collective, which files and
/// streams are its own, the file progress of the other ranks (rank 0 puts it in its
/// checkpoints), and the parameter checksum.
///
/// Used by the daemon's start-up, then only by the trainer's thread.
final class DistributedRun: @unchecked Sendable {
    let collective: MPICollective
    let checksumEvery: Int
    private let splitFiles: Bool
    /// The latest progress of the other ranks' files (on rank 0).
    private let remote = Shared<[String: FileProgress]>([:])

    var rank: Int { collective.rank }
    var size: Int { collective.size }

    init(config: DaemonConfig, logger: Logger) {
        collective = MPICollective(stepTimeout: config.stepTimeout, logger: logger)
        checksumEvery = config.checksumEvery
        splitFiles = config.splitFiles
    }

    /// The rank that learns from `path` when files are split: FNV-1a of the path's bytes, so every
    /// rank (and every run) agrees, whatever the process.
    static func owner(of path: String, ranks: Int) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in path.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int(hash % UInt64(max(1, ranks)))
    }

    /// Whether this rank learns from `path`.
    func owns(_ path: String) -> Bool { !splitFiles || Self.owner(of: path, ranks: size) == rank }

    /// The state directory of this rank: `state_dir` for rank 0 (checkpoints, TensorBoard, the
    /// ledger of its files), `state_dir/rank-N` for the others (their ledger, status.json, lock).
    func stateDirectory(_ base: String) -> String { rank == 0 ? base : base + "/rank-\(rank)" }

    /// The endpoint's address for this rank: rank N listens on the configured port + N (one
    /// machine may run several ranks); port 0 stays 0, "" stays off.
    func listen(_ configured: String) -> String {
        guard rank > 0, let colon = configured.lastIndex(of: ":"), let port = Int(configured[configured.index(after: colon)...]), port > 0 else {
            return configured
        }
        return String(configured[...colon]) + String(port + rank)
    }

    /// What rank 0 resumed from, sent to every rank at start.
    struct Start: Codable {
        /// The step of the checkpoint rank 0 resumed from; nil for a fresh start.
        var resumedStep: Int?
        var progress: [String: FileProgress]
    }

    /// Rank 0's learner state (resumed or fresh), file progress and resume step to every rank,
    /// which restores it: every rank starts from the same parameters, queue and optimizer state.
    func shareStart(_ learner: Learner, start: Start, logger: Logger) -> Start {
        var state = rank == 0 ? [UInt8](learner.state().serialized()) : []
        collective.broadcast(&state, root: 0)
        var encoded = rank == 0 ? [UInt8]((try? JSONEncoder().encode(start)) ?? Data()) : []
        collective.broadcast(&encoded, root: 0)
        guard rank != 0 else { return start }
        do {
            try learner.restore(try SafeTensors(data: Data(state)))
        } catch {
            fail("the state rank 0 sent does not fit this rank's model (is the config the same on every rank?): \(error)", logger: logger)
        }
        guard let received = try? JSONDecoder().decode(Start.self, from: Data(encoded)) else {
            fail("the start document rank 0 sent cannot be read", logger: logger)
        }
        return received
    }

    /// Rank 0: takes every other rank's progress (each rank's entries for the files it owns win
    /// over stale copies).
    func receive(_ documents: [[UInt8]], logger: Logger) {
        var merged: [String: FileProgress] = [:]
        for (r, bytes) in documents.enumerated() where r != rank {
            guard let progress = try? JSONDecoder().decode([String: FileProgress].self, from: Data(bytes)) else {
                logger.error("file progress from a rank could not be read: its files restart from their beginning after a restart", metadata: ["rank": "\(r)"])
                continue
            }
            for (path, p) in progress where !splitFiles || Self.owner(of: path, ranks: size) == r { merged[path] = p }
        }
        remote.value = merged
    }

    /// This rank's progress with the other ranks' (their own files') laid over it.
    func merged(local: [String: FileProgress]) -> [String: FileProgress] {
        local.merging(remote.value) { _, theirs in theirs }
    }

    /// Every rank's checksum of its parameters must be the same; a mismatch means the ranks no
    /// longer train one model, and ends the job.
    func verifySameParameters(_ learner: Learner, logger: Logger) {
        if let mismatch = Self.parameterMismatch(learner, over: collective) { fail(mismatch, logger: logger) }
    }

    /// nil when every rank's parameters have the same checksum (a sum, and a position-weighted
    /// sum, in double precision); otherwise what differs. One allgather.
    static func parameterMismatch(_ learner: Learner, over collective: Collective) -> String? {
        var sum = 0.0, weighted = 0.0, i = 0.0
        for p in learner.parameters {
            for v in p.value {
                sum += Double(v)
                weighted += Double(v) * (1 + i.truncatingRemainder(dividingBy: 9973))
                i += 1
            }
        }
        let all = collective.allgather([sum, weighted])
        guard all.contains(where: { $0 != all[0] }) else { return nil }
        return "the ranks' parameters differ at step \(learner.step) (checksums \(all.map { $0.map { String(format: "%.9e", $0) } })): they no longer train one model"
    }

    /// Ends this rank at once (exit 4) with a critical log line; mpirun then ends the others.
    func fail(_ message: String, logger: Logger) -> Never {
        logger.critical("distributed training cannot go on", metadata: ["rank": "\(rank)", "reason": "\(message)"])
        _exit(4)
    }
}
