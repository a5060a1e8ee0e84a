internal import CMPI
import Foundation
import Glibc
import Logging
import Synchronization
import TemporalContrast

/// `Collective` over Open MPI's MPI_COMM_WORLD, for processes started by `mpirun`.
///
/// Initialised with MPI_Init_thread(SERIALIZED): the daemon's start-up broadcasts the resumed
/// state, then only the trainer's thread calls, so calls never overlap (FUNNELED would tie every
/// call to the start-up thread). MPI's default error handler aborts the job on any MPI error, so a call that
/// returns has succeeded. A collective cannot be interrupted: a watchdog thread ends this process
/// (exit 3) when one has not returned within `stepTimeout` seconds, because a rank died or
/// stalled, and `mpirun` then stops every other rank. Each call counts the bytes it sends and the
/// seconds it takes, for the benchmarks.
final class MPICollective: Collective {
    let rank: Int
    let size: Int
    private let watchdog: CollectiveWatchdog
    /// Bytes this rank contributed to collectives, and seconds spent in them.
    private(set) var bytes = 0
    private(set) var seconds = 0.0

    /// Whether this process was started by an MPI launcher (Open MPI's `mpirun` sets
    /// OMPI_COMM_WORLD_SIZE and PMIX_RANK); without one the daemon never touches MPI.
    static var launched: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    /// MPI_Init_thread (SERIALIZED) and the rank and size of MPI_COMM_WORLD.
    init(stepTimeout: Double, logger: Logger) {
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, cmpi_thread_serialized(), &provided)
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(cmpi_comm_world(), &r)
        MPI_Comm_size(cmpi_comm_world(), &n)
        rank = Int(r)
        size = Int(n)
        watchdog = CollectiveWatchdog(timeout: stepTimeout, rank: rank, logger: logger)
    }

    /// MPI_Finalize: every rank calls it once, after its last collective.
    func finalize() {
        watchdog.stop()
        MPI_Finalize()
    }

    /// Runs one MPI call under the watchdog, counting its bytes and time.
    private func timed<R>(_ name: String, bytes count: Int, _ body: () -> R) -> R {
        watchdog.enter(name)
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        bytes += count
        watchdog.leave()
        return result
    }

    func allreduceSum(_ values: inout [Float]) {
        let n = Int32(values.count)
        timed("MPI_Allreduce", bytes: values.count * 4) {
            // In place: the buffer is both send and receive (MPI_IN_PLACE); it does not escape.
            _ = values.withUnsafeMutableBufferPointer { MPI_Allreduce(cmpi_in_place(), $0.baseAddress, n, cmpi_float(), cmpi_sum(), cmpi_comm_world()) }
        }
    }

    func allreduceSum(_ values: inout [Double]) {
        let n = Int32(values.count)
        timed("MPI_Allreduce", bytes: values.count * 8) {
            _ = values.withUnsafeMutableBufferPointer { MPI_Allreduce(cmpi_in_place(), $0.baseAddress, n, cmpi_double(), cmpi_sum(), cmpi_comm_world()) }
        }
    }

    func allgather(_ values: [Float]) -> [[Float]] { gather(values, type: cmpi_float()) }
    func allgather(_ values: [Double]) -> [[Double]] { gather(values, type: cmpi_double()) }
    func allgather(_ bytes: [UInt8]) -> [[UInt8]] { gather(bytes, type: cmpi_byte()) }

    /// MPI_Allgather of the lengths, then MPI_Allgatherv of the values, split back by rank.
    private func gather<T: BitwiseCopyable & Numeric>(_ values: [T], type: MPI_Datatype) -> [[T]] {
        var counts = [Int32](repeating: 0, count: size)
        var mine = Int32(values.count)
        timed("MPI_Allgather", bytes: 4) {
            _ = counts.withUnsafeMutableBufferPointer { MPI_Allgather(&mine, 1, cmpi_int(), $0.baseAddress, 1, cmpi_int(), cmpi_comm_world()) }
        }
        var displacements = [Int32](repeating: 0, count: size)
        for i in 1..<max(1, size) { displacements[i] = displacements[i - 1] + counts[i - 1] }
        let total = Int(counts.reduce(0, +))
        var all = [T](repeating: 0, count: total)
        timed("MPI_Allgatherv", bytes: values.count * MemoryLayout<T>.stride) {
            // The buffers do not escape the call.
            values.withUnsafeBufferPointer { send in
                all.withUnsafeMutableBufferPointer { receive in
                    _ = MPI_Allgatherv(send.baseAddress, mine, type, receive.baseAddress, counts, displacements, type, cmpi_comm_world())
                }
            }
        }
        return (0..<size).map { Array(all[Int(displacements[$0])..<Int(displacements[$0] + counts[$0])]) }
    }

    func broadcast(_ bytes: inout [UInt8], root: Int) {
        var length = [Double(bytes.count)]
        timed("MPI_Bcast", bytes: 8) {
            _ = length.withUnsafeMutableBufferPointer { MPI_Bcast($0.baseAddress, 1, cmpi_double(), Int32(root), cmpi_comm_world()) }
        }
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
        let chunk = 1 << 30
        var offset = 0
        while offset < bytes.count {
            let n = min(chunk, bytes.count - offset)
            timed("MPI_Bcast", bytes: rank == root ? n : 0) {
                _ = bytes.withUnsafeMutableBufferPointer { MPI_Bcast($0.baseAddress! + offset, Int32(n), cmpi_byte(), Int32(root), cmpi_comm_world()) }
            }
            offset += n
        }
    }
}

/// Ends the process when a collective has not returned in time: MPI calls cannot be interrupted,
/// and a rank that died or stalled would otherwise hold every other rank forever. Checks twice a
/// second from its own thread; the call in progress is published under a lock.
final class CollectiveWatchdog: Sendable {
    private struct Call { var name: String, since: Double }
    private let current = Mutex<Call?>(nil)
    private let stopped = Atomic<Bool>(false)

    private let timeout: Double
    private let rank: Int
    private let logger: Logger

    init(timeout: Double, rank: Int, logger: Logger) {
        self.timeout = timeout
        self.rank = rank
        self.logger = logger
        let thread = Thread { [self] in watch() }
        thread.name = "mpi-watchdog"
        thread.start()
    }

    private func watch() {
        while !stopped.load(ordering: .relaxed) {
            usleep(500_000)
            guard let call = current.withLock({ $0 }) else { continue }
            let waited = Self.now() - call.since
            if waited > timeout {
                logger.critical("a collective did not complete in time: a rank died or stalled; exiting so that mpirun ends the job", metadata: [
                    "rank": "\(rank)", "call": "\(call.name)", "waited_seconds": "\(String(format: "%.1f", waited))",
                    "step_timeout": "\(timeout)",
                ])
                // Not exit(): atexit handlers could block in MPI, which is what hangs.
                _exit(3)
            }
        }
    }

    func enter(_ name: String) { current.withLock { $0 = Call(name: name, since: Self.now()) } }
    func leave() { current.withLock { $0 = nil } }
    func stop() { stopped.store(true, ordering: .relaxed) }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
