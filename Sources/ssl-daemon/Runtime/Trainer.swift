import DaemonRuntime
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TemporalContrast

/// How a run should end, on top of the config.
struct RunLimits: Sendable {
    /// Process the files present at start once, then stop (a batch job).
    var once = false
    /// Stop when the learner's step count (earlier runs included) reaches this.
    var maxSteps: Int?
}

/// The trainer: the learner, its RNG, batch assembly and the step cadence. Draws batches from the
/// example exchange, steps the learner, and between steps takes the snapshots the checkpoint
/// service writes.
///
/// The learner and RNG are used only on the thread that runs `loop()` (or the lockstep driver's),
/// and after it has ended (the final snapshot); that confinement is why this class may be shared.
final class Trainer: @unchecked Sendable {
    let learner: Learner
    private var rng: RandomSource
    private let config: DaemonConfig
    private let limits: RunLimits
    private let exchange: ExampleExchange
    private let checkpoints: CheckpointService
    private let statistics: RunStatistics
    private let logger: Logger
    /// Health signals, plots and TensorBoard records after each step (on this thread).
    private let observer: TrainingObserver?
    /// Under mpirun: this rank's part in the job.
    private let distributed: DistributedRun?

    /// Beats after each step and each idle wake-up (at least once a second): the systemd
    /// reporter pings the watchdog only while it does.
    let heartbeat = Heartbeat()
    /// The step count and the latest loss, for status lines on other threads.
    let publishedStep: Atomic<Int>
    private let publishedLoss = Atomic<UInt32>(Float.nan.bitPattern)
    private let stopRequested = Atomic<Bool>(false)
    private let divergedFlag = Atomic<Bool>(false)

    /// The first and the latest 20 losses, for the summary (a fixed window: nothing grows per step).
    private var lossesFirst: [Float] = []
    private var lossesLast: [Float] = []

    init(learner: Learner, rng: RandomSource, config: DaemonConfig, limits: RunLimits, exchange: ExampleExchange,
         checkpoints: CheckpointService, statistics: RunStatistics, observer: TrainingObserver?, distributed: DistributedRun? = nil,
         logger: Logger) {
        self.observer = observer
        self.distributed = distributed
        self.learner = learner
        self.rng = rng
        self.config = config
        self.limits = limits
        self.exchange = exchange
        self.checkpoints = checkpoints
        self.statistics = statistics
        self.logger = logger
        publishedStep = Atomic(learner.step)
    }

    var lastLoss: Float { Float(bitPattern: publishedLoss.load(ordering: .relaxed)) }
    var diverged: Bool { divergedFlag.load(ordering: .relaxed) }
    var isStopping: Bool { stopRequested.load(ordering: .relaxed) }
    var reachedMaxSteps: Bool { limits.maxSteps.map { learner.step >= $0 } ?? false }

    /// Ends `loop()` after the step in progress.
    func stop() {
        stopRequested.store(true, ordering: .relaxed)
        exchange.wakeAll()
    }

    /// Trains until stopped, `--max-steps`, divergence, or (all producers finished) the data is
    /// used up. Waiting for data is idle, not busy: it wakes at least once a second for
    /// checkpoints and the heartbeat.
    func loop() {
        if let distributed {
            distributedLoop(distributed)
            return
        }
        while !isStopping && !reachedMaxSteps && !diverged {
            let draw = exchange.draw(mix: config.pairing.mix, rng: &rng,
                                     timeout: 1, cancelled: { self.isStopping })
            switch draw {
            case .batch(let examples):
                step(on: examples)
            case .starved(let finished):
                if finished || isStopping { return }
                heartbeat.beat()
                maybeCheckpoint()
            }
        }
    }

    /// Up to a batch from what the buffer holds (at least 2 examples), without waiting; nil when
    /// there is too little. Lockstep's way of drawing.
    func drawAvailable() -> [TrainingExample]? {
        if case .batch(let examples) = exchange.draw(mix: config.pairing.mix, rng: &rng,
                                                     acceptPartial: true, timeout: 0, cancelled: { true }) {
            return examples
        }
        return nil
    }

    /// One optimizer step on `examples`, with its logging and (alone) a periodic checkpoint when
    /// due; under mpirun, this rank's part of the step, on `batch` made from them.
    func step(on examples: [TrainingExample], batch: Learner.Batch? = nil, distributed step: Learner.DistributedStep? = nil) {
        let started = ContinuousClock.now
        let report = learner.train(batch ?? makeBatch(examples), distributed: step)
        observer?.observe(report, duration: ContinuousClock.now - started, learner: learner, exchange: exchange)
        if lossesFirst.count < 20 { lossesFirst.append(report.loss) }
        lossesLast.append(report.loss)
        if lossesLast.count > 20 { lossesLast.removeFirst() }
        statistics.countTrained(examples)
        publishedStep.store(learner.step, ordering: .relaxed)
        publishedLoss.store(report.loss.bitPattern, ordering: .relaxed)
        heartbeat.beat()
        if report.skipped {
            statistics.skippedUpdates.add(1, ordering: .relaxed)
            logger.warning("update skipped: not finite", metadata: [
                "step": "\(report.step)", "what": "\(report.nonFinite ?? "?")",
                "image_loss": "\(report.imageLoss ?? .nan)", "audio_loss": "\(report.audioLoss ?? .nan)",
            ])
        }
        if report.step % 20 == 0 {
            logger.info("step", metadata: [
                "step": "\(report.step)", "loss": "\(report.loss)", "accuracy": "\(report.health?.accuracy ?? .nan)",
                "embedding_std": "\(report.health?.embeddingStd ?? .nan)", "lr": "\(report.learningRate)",
            ])
        }
        if distributed == nil { maybeCheckpoint() }
    }

    /// Writes a periodic checkpoint (in the background) when one is due.
    func maybeCheckpoint() {
        guard checkpoints.isDue else { return }
        let full = checkpoints.beginCheckpoint(final: false)
        guard let snapshot = snapshot(includeBuffer: full) else {
            checkpoints.abandonCheckpoint()
            return
        }
        checkpoints.write(snapshot, wait: false)
    }

    /// Everything a checkpoint holds, taken between steps; nil (and the run stops) when the
    /// parameters are not finite: garbage must never be written over, and prune, the good ones.
    func snapshot(includeBuffer: Bool) -> CheckpointSnapshot? {
        guard learner.parametersAreFinite else {
            if !divergedFlag.exchange(true, ordering: .relaxed) {
                logger.critical("parameters are not finite: training diverged; not checkpointing, stopping", metadata: ["step": "\(learner.step)"])
            }
            stop()
            return nil
        }
        var model = learner.state()
        model.metadata["rng"] = rng.state.map { String($0, radix: 16) }.joined(separator: ",")
        let (local, buffer, covered) = exchange.snapshot(includeBuffer: includeBuffer) { checkpoints.ledgerStaged }
        let progress = distributed.map { $0.merged(local: local) } ?? local
        return CheckpointSnapshot(model: model, step: learner.step, progress: progress, buffer: buffer, covered: covered)
    }

    /// Mean of the first and of the latest 20 losses; skipped (non-finite) steps do not enter the
    /// means: JSON has no NaN.
    var lossSummary: (first: Double?, last: Double?) {
        func mean(_ xs: [Float]) -> Double? {
            let finite = xs.filter(\.isFinite)
            return finite.isEmpty ? nil : Double(finite.reduce(0, +)) / Double(finite.count)
        }
        return (mean(lossesFirst), mean(lossesLast))
    }

    /// Augmented tensors for one step: image pairs for the video objective, audio-video pairs for
    /// the cross-modal one (log-mel transposed to [bands, frames, 1]); a kind with fewer than
    /// `minimum` examples is left out (alone a loss needs 2; a rank's share may be 1).
    private func makeBatch(_ examples: [TrainingExample], minimum: Int = 2) -> Learner.Batch {
        let aug = config.pairing.image, audioAug = config.pairing.audio
        let s = aug.outputSize
        var anchors: [Float] = [], positives: [Float] = [], imageOrigins: [SampleOrigin] = []
        var frames: [Float] = [], mels: [Float] = [], audioOrigins: [SampleOrigin] = []
        var melShape: (bands: Int, frames: Int)?
        for e in examples {
            if e.kind == .audioVideo, let mel = e.audio {
                if melShape == nil { melShape = (mel.bands, mel.frames) }
                guard let shape = melShape, shape == (mel.bands, mel.frames) else { continue }
                frames += aug.apply(e.anchor, rng: &rng)
                let m = audioAug.apply(mel, rng: &rng)
                for b in 0..<mel.bands { for t in 0..<mel.frames { mels.append(m[t * mel.bands + b]) } }
                audioOrigins.append(e.origin)
            } else if let p = e.positive {
                anchors += aug.apply(e.anchor, rng: &rng)
                positives += aug.apply(p, rng: &rng)
                imageOrigins.append(e.origin)
            }
        }
        var batch = Learner.Batch()
        if imageOrigins.count >= minimum {
            batch.anchors = Tensor(shape: [imageOrigins.count, s, s, 3], storage: anchors)
            batch.positives = Tensor(shape: [imageOrigins.count, s, s, 3], storage: positives)
            batch.imageOrigins = imageOrigins
        }
        if let shape = melShape, audioOrigins.count >= minimum {
            batch.frames = Tensor(shape: [audioOrigins.count, s, s, 3], storage: frames)
            batch.mels = Tensor(shape: [audioOrigins.count, shape.bands, shape.frames, 1], storage: mels)
            batch.audioOrigins = audioOrigins
        }
        return batch
    }
}

extension Trainer {
    /// Under mpirun: every rank steps in lockstep. Each round draws what this rank has (waiting at
    /// most 0.2 s, so a rank without data holds nobody up), agrees on the step in one header
    /// allreduce (examples, stop, checkpoint, finished), steps when the ranks have examples
    /// together, and shares file progress whenever rank 0 checkpoints and at the end. The loop
    /// ends on every rank at once: a stop on any rank (a signal, `--max-steps`, divergence), or
    /// every rank finished with its data (`--once`).
    fileprivate func distributedLoop(_ run: DistributedRun) {
        var verifiedStep = learner.step
        while true {
            let draw = exchange.draw(mix: config.pairing.mix, rng: &rng,
                                     timeout: 0.2, cancelled: { self.isStopping })
            var examples: [TrainingExample] = [], finished = false
            switch draw {
            case .batch(let e): examples = e
            case .starved(let f): finished = f
            }
            let batch = makeBatch(examples, minimum: 1)
            let header: StepHeader
            do {
                header = try StepHeader.exchange(
                    imagePairs: batch.positives == nil ? 0 : batch.anchors?.batch ?? 0, audioPairs: batch.mels == nil ? 0 : batch.frames?.batch ?? 0,
                    stopping: isStopping || reachedMaxSteps || diverged, checkpoint: run.rank == 0 && checkpoints.isDue,
                    finished: finished, step: learner.step, over: run.collective)
            } catch {
                run.fail("\(error)", logger: logger)
            }
            if header.stopping == 0 && (header.imagePairs >= 2 || header.audioPairs >= 2) {
                step(on: examples, batch: batch, distributed: .init(collective: run.collective, header: header))
            } else {
                heartbeat.beat()
            }
            let ending = header.stopping > 0 || (header.finished == run.size && header.imagePairs + header.audioPairs == 0)
            if header.checkpoint > 0 || ending { shareProgress(run, checkpoint: header.checkpoint > 0) }
            if run.checksumEvery > 0 && learner.step != verifiedStep && learner.step % run.checksumEvery == 0 {
                verifiedStep = learner.step
                run.verifySameParameters(learner, logger: logger)
            }
            if ending {
                run.collective.finalize()
                return
            }
        }
    }

    /// Every rank's file progress to rank 0, which keeps it for its checkpoints (and writes the
    /// periodic one now); the other ranks record their finished epochs in their own ledger with
    /// the step of that checkpoint (a resume from an older one ignores them, as for any ledger
    /// line newer than the checkpoint resumed from).
    private func shareProgress(_ run: DistributedRun, checkpoint: Bool) {
        let (progress, _, staged) = exchange.snapshot(includeBuffer: false) { checkpoints.ledgerStaged }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let all = run.collective.allgather([UInt8]((try? encoder.encode(progress)) ?? Data("{}".utf8)))
        if run.rank == 0 {
            run.receive(all, logger: logger)
            if checkpoint { maybeCheckpoint() }
        } else if !staged.isEmpty {
            checkpoints.commit(staged, step: learner.step)
        }
    }
}

/// The trainer as a service: its loop on a dedicated thread. When the loop ends by itself
/// (`--max-steps`, `--once` with the data used up, divergence) it asks the group to shut down.
struct TrainerService: Service {
    let trainer: Trainer
    let requestShutdown: @Sendable () async -> Void

    func run() async throws {
        let trainer = self.trainer
        await runBlockingService(name: "trainer", stop: { trainer.stop() }, finished: requestShutdown) {
            trainer.loop()
        }
    }
}
