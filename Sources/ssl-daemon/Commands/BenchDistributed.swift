import ArgumentParser
import DaemonRuntime
import Foundation
import Logging
import TemporalContrast

/// `ssl-daemon bench distributed`: data-parallel steps over seeded synthetic batches, alone or
/// under `mpirun`, writing each rank's final state. One global batch per step (the same whatever
/// the rank count: `--batch` × ranks rows, rank r taking its own `--batch` rows), so N ranks with
/// batch b and one process with batch N·b train on the same examples: the equivalence test
/// compares their states. Also times the step and the collectives, for the benchmark.
struct BenchDistributed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distributed",
        abstract: "Train on seeded synthetic batches, alone or under mpirun, and write each rank's final state.",
        discussion: #"""
            Last line (rank 0): {"ranks": N, "steps": S, "ms_per_step": M, "collective_ms_per_step": C, "bytes_per_step": B, "blas_core": K}.
            Each rank writes OUT/rank-R.pid at start and OUT/rank-R.safetensors (parameters, optimizer state, key queue) at the end.
            Example: mpirun --oversubscribe -np 2 ssl-daemon bench distributed --batch 8 --out /tmp/d2
            """#
    )

    @Option(help: "small: 32 px images, a 64-key queue, audio-video pairs too (the equivalence tests); reference: the reference MoCo workload of `bench train` (64 px, 4096 keys, no audio), for timing.")
    var preset: DistributedPreset = .small

    @Option(help: "Video encoder.")
    var video: VideoArchitecture = .reference

    @Option(help: "Objective on the image pairs (preset small).")
    var objective: LearnerConfig.Objective = .moco

    @Option(help: "Image pairs (and as many audio-video pairs) per rank and step.")
    var batch: Int = 8

    @Option(help: "Steps.")
    var steps: Int = 20

    @Option(help: "Side of the synthetic images, pixels.")
    var imageSize: Int = 32

    @Option(help: "MoCo key queue length.")
    var queue: Int = 64

    @Option(help: "Learning rate after a 2-step warm-up (SGD with momentum 0.9).")
    var learningRate: Float = 0.03

    @Option(help: "Seed of the weights and the data.")
    var seed: UInt64 = 0

    @Option(help: "Compute threads per rank.")
    var threads: Int = 1

    @Option(help: "Where each rank writes rank-R.safetensors ('' writes nothing).")
    var out: String = ""

    @Option(help: "Global rows LOW-HIGH (half-open) left out of the steps given by --drop-steps: with 2 ranks of batch b, b-2b leaves rank 1 without data.")
    var dropRows: String = ""

    @Option(help: "Steps LOW-HIGH (half-open) without the rows of --drop-rows.")
    var dropSteps: String = ""

    @Flag(help: "Print each step's loss and gradient norm on stderr (rank 0).")
    var logSteps = false

    @Flag(help: "Enqueue only this rank's MoCo keys (the ranks' queues then diverge: a negative control).")
    var noKeyGather = false

    @Option(help: "Steps between comparisons of a parameter checksum across ranks (0: never); a mismatch exits 4.")
    var checksumEvery: Int = 0

    @Option(help: "Under mpirun: this rank nudges one parameter after step --corrupt-at (the checksum must notice).")
    var corruptRank: Int = -1

    @Option(help: "The step after which --corrupt-rank nudges a parameter.")
    var corruptAt: Int = 0

    @Option(help: "Seconds a collective may take before the rank exits (under mpirun).")
    var stepTimeout: Double = 60

    @Option(help: "Under mpirun: this rank sleeps --stall-seconds before step --stall-at (a stalled rank).")
    var stallRank: Int = -1

    @Option(help: "The step at which --stall-rank stalls.")
    var stallAt: Int = 0

    @Option(help: "How long --stall-rank stalls, seconds.")
    var stallSeconds: Double = 0

    private static func range(_ text: String, _ name: String) throws -> Range<Int>? {
        if text.isEmpty { return nil }
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 0, parts[1] >= parts[0] else {
            throw ValidationError("\(name) must be LOW-HIGH with 0 <= LOW <= HIGH, got '\(text)'")
        }
        return parts[0]..<parts[1]
    }

    func validate() throws {
        if batch < 1 || steps < 1 || threads < 1 { throw ValidationError("--batch, --steps and --threads must be at least 1") }
        if imageSize < 16 || imageSize > 256 { throw ValidationError("--image-size must be in 16...256") }
        if queue < 1 { throw ValidationError("--queue must be at least 1") }
        if checksumEvery < 0 { throw ValidationError("--checksum-every must be at least 0") }
        if !(learningRate > 0 && learningRate <= 10) { throw ValidationError("--learning-rate must be in (0, 10]") }
        if !(stepTimeout > 0) { throw ValidationError("--step-timeout must be positive") }
        _ = try Self.range(dropRows, "--drop-rows")
        _ = try Self.range(dropSteps, "--drop-steps")
    }

    func run() throws {
        let logger = Logger(label: "ssl-daemon")
        ComputeThreads.configure(threads)
        let mpi = MPICollective.launched ? MPICollective(stepTimeout: stepTimeout, logger: logger) : nil
        let collective: Collective = mpi ?? SingleProcess()
        defer { mpi?.finalize() }
        var config = LearnerConfig()
        var size = imageSize, audio = true
        switch preset {
        case .small:
            config.objective = objective
            config.queue = queue
            config.warmupSteps = 2
            config.learningRate = learningRate
            config.seed = seed
        case .reference:
            config = ReferenceWorkload.config(seed: seed)
            size = ReferenceWorkload.imageSize
            audio = false
        }
        config.video = video.backbone
        let learner = Learner(config: config)
        if !out.isEmpty {
            // Each rank's pid, for tests that kill one rank.
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try "\(getpid())\n".write(toFile: out + "/rank-\(collective.rank).pid", atomically: true, encoding: .utf8)
        }
        let rows = try Self.range(dropRows, "--drop-rows"), dropped = try Self.range(dropSteps, "--drop-steps")
        let global = batch * collective.size
        var stepSeconds = 0.0
        for step in 0..<steps {
            if collective.rank == stallRank && step == stallAt { usleep(UInt32(min(stallSeconds, 4000) * 1_000_000)) }
            let started = DispatchTime.now().uptimeNanoseconds
            let keep = (collective.rank * batch..<(collective.rank + 1) * batch).filter { row in
                !(dropped?.contains(step) == true && rows?.contains(row) == true)
            }
            let data = SyntheticBatch(seed: seed, step: step, rows: global, imageSize: size, audio: audio)
            let local = data.batch(rows: keep)
            let header = try StepHeader.exchange(
                imagePairs: keep.count, audioPairs: audio ? keep.count : 0, stopping: false, checkpoint: false, step: learner.step, over: collective)
            let report = learner.train(local, distributed: .init(collective: collective, header: header, gatherKeys: !noKeyGather))
            if logSteps && collective.rank == 0 {
                FileHandle.standardError.write(Data("step \(report.step) loss \(report.loss) image \(report.imageLoss ?? .nan) audio \(report.audioLoss ?? .nan) skipped \(report.skipped)\n".utf8))
            }
            if step > 0 { stepSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
            if collective.rank == corruptRank && step == corruptAt { learner.parameters[0].value[0] += 1e-3 }
            if checksumEvery > 0 && learner.step % checksumEvery == 0, let mismatch = DistributedRun.parameterMismatch(learner, over: collective) {
                logger.critical("distributed training cannot go on", metadata: ["rank": "\(collective.rank)", "reason": "\(mismatch)"])
                mpi?.finalize()
                throw ExitCode(4)
            }
        }
        if !out.isEmpty {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try learner.state().serialized().write(to: URL(fileURLWithPath: out).appendingPathComponent("rank-\(collective.rank).safetensors"))
        }
        if collective.rank == 0 {
            let timed = Double(max(1, steps - 1))
            let perStep = stepSeconds / timed * 1000
            let collectiveMs = (mpi?.seconds ?? 0) / Double(steps) * 1000
            let bytes = (mpi?.bytes ?? 0) / steps
            print(#"{"ranks": \#(collective.size), "steps": \#(steps), "ms_per_step": \#((perStep * 10).rounded() / 10), "collective_ms_per_step": \#((collectiveMs * 10).rounded() / 10), "bytes_per_step": \#(bytes), "blas_core": "\#(ComputeThreads.blasCore)"}"#)
        }
    }
}

enum DistributedPreset: String, CaseIterable, ExpressibleByArgument {
    case small, reference
}

/// One step's global batch of seeded synthetic examples: image pairs (a random image and a noisy
/// copy) and, with `audio`, audio-video pairs, with origins from 4 sources, a function of (seed, step) only.
struct SyntheticBatch {
    let anchors: [[Float]], positives: [[Float]], frames: [[Float]], mels: [[Float]]
    let origins: [SampleOrigin]
    let imageSize: Int
    static let melBands = 64, melFrames = 96

    init(seed: UInt64, step: Int, rows: Int, imageSize: Int, audio: Bool) {
        var rng = RandomSource(seed: seed &* 1_000_003 &+ UInt64(step) &+ 17)
        let pixels = imageSize * imageSize * 3, mel = Self.melBands * Self.melFrames
        var a: [[Float]] = [], p: [[Float]] = [], f: [[Float]] = [], m: [[Float]] = [], o: [SampleOrigin] = []
        for row in 0..<rows {
            let image = (0..<pixels).map { _ in rng.normal() }
            a.append(image)
            p.append(image.map { $0 + 0.3 * rng.normal() })
            if audio {
                f.append((0..<pixels).map { _ in rng.normal() })
                m.append((0..<mel).map { _ in rng.normal() })
            }
            o.append(SampleOrigin(source: row % 4, time: Double(step * rows + row)))
        }
        anchors = a
        positives = p
        frames = f
        mels = m
        origins = o
        self.imageSize = imageSize
    }

    /// The learner's batch of `rows` (any subset, in order); no tensors when `rows` is empty.
    func batch(rows: [Int]) -> Learner.Batch {
        var b = Learner.Batch()
        guard !rows.isEmpty else { return b }
        let s = imageSize, n = rows.count
        b.anchors = Tensor(shape: [n, s, s, 3], storage: rows.flatMap { anchors[$0] })
        b.positives = Tensor(shape: [n, s, s, 3], storage: rows.flatMap { positives[$0] })
        b.imageOrigins = rows.map { origins[$0] }
        if !frames.isEmpty {
            b.frames = Tensor(shape: [n, s, s, 3], storage: rows.flatMap { frames[$0] })
            b.mels = Tensor(shape: [n, Self.melBands, Self.melFrames, 1], storage: rows.flatMap { mels[$0] })
            b.audioOrigins = rows.map { origins[$0] }
        }
        return b
    }
}
