/// The collective operations of a data-parallel step, over the processes (ranks) that train one
/// model together. Every rank calls the same operations in the same order with buffers of the
/// same length (except `allgather`, whose parts may differ in length); results are identical on
/// every rank. Implementations: `SingleProcess` (the default: one rank, every operation the
/// identity) and the daemon's MPI one.
///
/// One thread at a time calls a collective: the daemon's start-up, then its trainer.
public protocol Collective: AnyObject {
    /// This process's index, 0..<size; rank 0 resumes, checkpoints and reports.
    var rank: Int { get }
    /// The number of ranks.
    var size: Int { get }
    /// Element-wise sum over ranks, in place (MPI_Allreduce, MPI_SUM).
    func allreduceSum(_ values: inout [Float])
    /// Element-wise sum over ranks, in place, in double precision (counters, checksums).
    func allreduceSum(_ values: inout [Double])
    /// Every rank's `values`, indexed by rank (MPI_Allgather of the lengths, then MPI_Allgatherv).
    func allgather(_ values: [Float]) -> [[Float]]
    /// Every rank's `values`, indexed by rank, in double precision.
    func allgather(_ values: [Double]) -> [[Double]]
    /// Every rank's bytes, indexed by rank (documents such as file progress).
    func allgather(_ bytes: [UInt8]) -> [[UInt8]]
    /// `bytes` from `root` on every rank (MPI_Bcast of the length, then of the bytes).
    func broadcast(_ bytes: inout [UInt8], root: Int)
}

/// One process training alone: every collective is the identity.
public final class SingleProcess: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ values: inout [Float]) {}
    public func allreduceSum(_ values: inout [Double]) {}
    public func allgather(_ values: [Float]) -> [[Float]] { [values] }
    public func allgather(_ values: [Double]) -> [[Double]] { [values] }
    public func allgather(_ bytes: [UInt8]) -> [[UInt8]] { [bytes] }
    public func broadcast(_ bytes: inout [UInt8], root: Int) {}
}

/// What every rank learns at the start of a distributed step, from one allreduce of a small
/// header: how many examples of each kind the step has over all ranks, and whether any rank is
/// stopping. A rank with no data this step contributes zero examples and zero gradient (join).
public struct StepHeader: Sendable, Equatable {
    /// Image pairs (for the video objective) and audio-video pairs, over all ranks.
    public var imagePairs: Int
    public var audioPairs: Int
    /// Ranks that asked to stop (any > 0 stops every rank after this step).
    public var stopping: Int
    /// Ranks that asked for a checkpoint at this step (rank 0 decides; others pass 0).
    public var checkpoint: Int
    /// Ranks whose sources are all finished and whose data is used up (`--once`).
    public var finished: Int

    public struct Mismatch: Error, CustomStringConvertible {
        /// This rank's step and the mean step over all ranks.
        public var step: Int
        public var mean: Double
        public var description: String {
            "ranks disagree on the step (this rank is at \(step), the mean over ranks is \(mean)): they did not start from the same state"
        }
    }

    /// Sums the header over ranks. The step must be the same on every rank: the sums of the step
    /// and of its square give both the mean and the spread, exact in double precision for steps
    /// below 2^26 (the check is skipped above that).
    public static func exchange(imagePairs: Int, audioPairs: Int, stopping: Bool, checkpoint: Bool, finished: Bool = false, step: Int,
                                over collective: Collective) throws(Mismatch) -> StepHeader {
        let s = Double(step)
        var values: [Double] = [Double(imagePairs), Double(audioPairs), stopping ? 1 : 0, checkpoint ? 1 : 0, finished ? 1 : 0, s, s * s]
        collective.allreduceSum(&values)
        let n = Double(collective.size)
        if step < 1 << 26 {
            let mean = values[5] / n
            let spread = values[6] / n - mean * mean
            if abs(spread) > 1e-6 { throw Mismatch(step: step, mean: mean) }
        }
        return StepHeader(imagePairs: Int(values[0]), audioPairs: Int(values[1]), stopping: Int(values[2]), checkpoint: Int(values[3]), finished: Int(values[4]))
    }
}
