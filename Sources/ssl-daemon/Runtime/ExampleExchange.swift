import DaemonRuntime
import Foundation
import TemporalContrast

/// Where a file's reading stopped: which epoch, and how many decoded items (frames, audio chunks,
/// boundaries) pairing has consumed. Saved in checkpoints; a resumed file replays its first
/// `items` through pairing (rebuilding the stage's state) without delivering them again.
struct FileProgress: Codable, Equatable, Sendable {
    var epoch: Int
    var items: Int
}

/// The only state sources and the trainer share: the replay buffer and each file's progress,
/// changed together under one lock, so a checkpoint never sees examples without the file
/// position they came from (or the reverse).
///
/// Every delivered example grants the trainer `replayRatio` draws (the buffer's credit, capped at
/// `lookahead` examples' worth); while any producer is active the trainer waits for credit rather
/// than reuse old examples more, so each step sees the same share of new data however fast
/// decoding keeps up (a loaded machine slows training, it does not change what is learned).
/// Files deliver with backpressure (they wait while the trainer holds the full credit: nothing
/// from a file is lost); live sources never wait (their own queue drops the oldest frames instead).
/// Each source registers as a producer and says whether it is active; the trainer reads that to
/// know when partial batches are all it will get, and when a batch job is over.
final class ExampleExchange: Sendable {
    enum ProducerState: Sendable {
        /// Has or may soon have examples (a live stream, a file source with files queued).
        case active
        /// Nothing to read right now; more may come (a watched directory with nothing new).
        case idle
        /// Will deliver nothing more (`--once` and every file read).
        case finished
    }

    private struct State {
        var buffer: ReplayBuffer
        var progress: [String: FileProgress]
        var producers: [String: ProducerState] = [:]
    }

    private let monitor: Monitor<State>
    private let statistics: RunStatistics
    /// What a trainer step draws: `batch` examples, each used fewer than `maxUses` times.
    let batch: Int, maxUses: Int
    /// Draws granted per delivered example (at most `maxUses`).
    let replayRatio: Int
    /// The credit's cap, in draws: `lookahead` examples' worth. Files wait while it is full.
    let creditCap: Int
    /// Examples the buffer must have received (in its life, checkpoints included) before the
    /// first draw while a producer is active; files do not wait before then.
    let prefill: Int

    init(buffer: ReplayBuffer, progress: [String: FileProgress], batch: Int, maxUses: Int, replayRatio: Int, lookahead: Int,
         prefill: Int = 0, statistics: RunStatistics) {
        monitor = Monitor(State(buffer: buffer, progress: progress))
        self.batch = batch
        self.maxUses = maxUses
        self.replayRatio = min(replayRatio, maxUses)
        creditCap = max(lookahead, batch) * self.replayRatio
        self.prefill = prefill
        self.statistics = statistics
        statistics.publish(buffer)
    }

    // MARK: Producers

    func setProducer(_ name: String, _ state: ProducerState) {
        monitor.update { $0.producers[name] = state }
    }

    /// No producer is active: what the buffer holds is all there is for now.
    var producersQuiet: Bool { monitor.withLock { Self.quiet($0) } }

    private static func quiet(_ s: State) -> Bool { s.producers.values.allSatisfy { $0 != .active } }
    private static func finished(_ s: State) -> Bool { s.producers.values.allSatisfy { $0 == .finished } }

    // MARK: Delivery

    /// Adds `examples` to the replay buffer and records `position` (the file position they came
    /// from) in the same lock hold. With `waitForRoom`, waits first while the trainer holds the
    /// full credit (and can draw), unless `cancelled()` (checked at each wake-up; whoever sets it
    /// calls `wakeAll()`). A cancelled wait still delivers: the position and its examples stay
    /// together, and the final checkpoint holds both.
    func deliver(_ examples: [TrainingExample], position: (path: String, progress: FileProgress)? = nil,
                 waitForRoom: Bool, cancelled: () -> Bool = { false }) {
        let room: (State) -> Bool = { s in examples.isEmpty || !waitForRoom || cancelled() || !self.backpressured(s) }
        monitor.wait(for: room) { s in
            if let position { s.progress[position.path] = position.progress }
            for e in examples {
                s.buffer.insert(e)
                statistics.countProduced(e.kind)
            }
            s.buffer.grant(examples.count * replayRatio, cap: creditCap)
            if !examples.isEmpty { statistics.publish(s.buffer) }
        }
        if !examples.isEmpty { monitor.wakeAll() }
    }

    /// Whether a file source delivering now would have to wait (lockstep trains instead).
    var isBackpressured: Bool { monitor.withLock { backpressured($0) } }

    /// The trainer holds the full credit and has a batch to draw: more data would only wait.
    private func backpressured(_ s: State) -> Bool {
        s.buffer.credit >= creditCap && s.buffer.available(maxUses: maxUses) >= batch && s.buffer.inserted >= prefill
    }

    /// Changes per-file progress alone (an epoch finished, a file failed).
    func updateProgress(_ body: (inout [String: FileProgress]) -> Void) {
        monitor.update { body(&$0.progress) }
    }

    // MARK: Drawing

    /// What `draw` found.
    enum Draw {
        case batch([TrainingExample])
        /// Too little to train on; `finished` when no producer will deliver more.
        case starved(finished: Bool)
    }

    /// A batch for one step: `batch` examples drawn by `mix` (each used fewer than `maxUses` times)
    /// once that many are available and, while a producer is active, paid for by the credit and
    /// after the prefill;
    /// fewer (at least 2) when no producer is active, or when `acceptPartial` (lockstep, which
    /// orders reading and training itself). Waits up to `timeout` seconds when there is too little.
    func draw(mix: PairMix, rng: inout RandomSource, acceptPartial: Bool = false, timeout: Double, cancelled: () -> Bool) -> Draw {
        let deadline = Date().addingTimeInterval(timeout)
        let size = batch, maxUses = maxUses, prefill = prefill
        let drawable: (State) -> Bool = { s in
            let available = s.buffer.available(maxUses: maxUses)
            if acceptPartial || Self.quiet(s) { return available >= 2 }
            return available >= size && s.buffer.credit >= size && s.buffer.inserted >= prefill
        }
        let result: Draw = monitor.wait(until: deadline, for: { cancelled() || drawable($0) || Self.finished($0) }) { s in
            guard drawable(s) else { return .starved(finished: Self.finished(s)) }
            let examples = s.buffer.sample(size, mix: mix, rng: &rng, maxUses: maxUses)
            statistics.publish(s.buffer)
            return examples.count >= 2 ? .batch(examples) : .starved(finished: Self.finished(s))
        }
        // Only kinds the mix gives no share were left: still wait out the timeout, or the trainer
        // would spin on them.
        if case .starved(false) = result, !cancelled(), Date() < deadline {
            monitor.wait(until: deadline, for: { _ in cancelled() }) { _ in }
        }
        // Files waiting on backpressure may go on.
        if case .batch = result { monitor.wakeAll() }
        return result
    }

    func wakeAll() { monitor.wakeAll() }

    /// The newest examples and a random sample of the buffer, for looking at (the retrieval
    /// panel): uses are not counted, so training draws as if nobody had looked.
    func peek(newest: Int, sample: Int, rng: inout RandomSource) -> (newest: [TrainingExample], sample: [TrainingExample]) {
        monitor.withLock { s in (s.buffer.newest(newest), s.buffer.peek(sample, rng: &rng)) }
    }

    // MARK: Checkpoints

    /// Progress and (for a full checkpoint) the replay buffer, with `alongside` evaluated in the
    /// same lock hold (the ledger's staged epochs), so all three describe one moment.
    func snapshot<T>(includeBuffer: Bool, alongside: () -> T) -> (progress: [String: FileProgress], buffer: ReplayBuffer?, T) {
        monitor.withLock { s in (s.progress, includeBuffer ? s.buffer : nil, alongside()) }
    }
}
