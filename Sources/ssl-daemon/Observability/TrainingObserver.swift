import DaemonRuntime
import Foundation
import Logging
import TemporalContrast

/// Watches training from the trainer's thread, after each step: label-free health (std ratio,
/// effective rank over a window of recent embeddings, the collapse alarm), the scalar records
/// for plots and TensorBoard, the kNN monitor and the retrieval panel. It only reads the learner
/// (inference passes) and has its own random source, so observing never changes what is learned.
final class TrainingObserver {
    private let config: DaemonConfig
    private let board: SignalBoard
    private let statistics: RunStatistics
    private let logger: Logger
    private let labelled: LabelledSet?
    private var detector: CollapseDetector
    private var rng = RandomSource(seed: 0x0B5E_47E5)

    /// The latest `monitor.rank_window` embeddings, a ring of rows.
    private var window: [Float] = []
    private var windowNext = 0
    private var windowRows = 0
    private var dimension = 0

    private var signals = TrainingSignals()
    private var lastRecord: (time: Double, pairs: Int)?
    private var lastRetrieval = -Double.infinity
    private var lastKNNStep: Int?

    init(config: DaemonConfig, board: SignalBoard, statistics: RunStatistics, labelled: LabelledSet?, logger: Logger) {
        self.config = config
        self.board = board
        self.statistics = statistics
        self.labelled = labelled
        self.logger = logger
        detector = CollapseDetector(minStdRatio: Float(config.collapseStdRatio), minEffectiveRank: Float(config.collapseRank), steps: config.collapseSteps)
    }

    /// After the step that produced `report` (which took `duration`).
    func observe(_ report: Learner.Report, duration: Duration, learner: Learner, exchange: ExampleExchange) {
        board.recordStepDuration(duration)
        // Steps completed, as checkpoints count them.
        let step = learner.step
        let health = report.health
        signals.step = step
        signals.loss = finite(report.loss)
        signals.image_loss = finite(report.imageLoss)
        signals.audio_loss = finite(report.audioLoss)
        signals.learning_rate = finite(report.learningRate)
        signals.step_seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        if let health {
            signals.chance_loss = finite(health.chanceLoss)
            signals.accuracy = finite(health.accuracy)
            signals.positive_cosine = finite(health.positiveCosine)
            signals.negative_cosine = finite(health.negativeCosine)
            signals.alignment = finite(health.alignment)
            signals.uniformity = finite(health.uniformity)
        }
        var stdRatio = Float.nan
        if let z = report.embeddings, z.batch > 0 {
            remember(z)
            signals.embedding_dimension = z.itemSize
            if let std = health?.embeddingStd, std.isFinite { stdRatio = std * Float(z.itemSize).squareRoot() }
        }
        signals.std_ratio = finite(stdRatio)
        if step % config.rankEvery == 0, windowRows >= 2 {
            signals.effective_rank = finite(EffectiveRank.of(Array(window[0..<(windowRows * dimension)]), dimension: dimension))
        }
        signals.queue_entries = learner.method.queueFill?.entries
        signals.queue_capacity = learner.method.queueFill?.capacity
        let raised = detector.observe(step: step, stdRatio: stdRatio, effectiveRank: signals.effective_rank ?? .nan)
        signals.collapse = detector.alarm
        signals.collapse_reason = detector.alarm ? collapseReason() : nil
        if raised {
            logger.warning("collapse alarm: the embedding looks collapsed", metadata: [
                "step": "\(step)", "reason": "\(signals.collapse_reason ?? "")",
                "std_ratio": "\(signals.std_ratio ?? .nan)", "effective_rank": "\(signals.effective_rank ?? .nan)",
            ])
        }
        if let labelled, step % config.knnEvery == 0 || (lastKNNStep == nil && labelled.isReady) {
            if let accuracy = labelled.accuracy(of: learner.video, k: config.knnK, temperature: Float(config.knnTemperature)) {
                signals.knn_accuracy = finite(accuracy)
                signals.knn_step = step
                lastKNNStep = step
                logger.info("kNN monitor", metadata: ["step": "\(step)", "accuracy": "\(accuracy)", "items": "\(labelled.count)"])
            }
        }
        board.publish(signals)
        if step % config.monitorEvery == 0 { recordScalars(step: step, measuredKNN: lastKNNStep == step) }
        let now = Date().timeIntervalSince1970
        if config.retrievalEvery > 0, now - lastRetrieval >= config.retrievalEvery {
            lastRetrieval = now
            if let panel = RetrievalPanelBuilder.build(step: step, learner: learner, exchange: exchange, input: config.encoderInput.video, rng: &rng) {
                board.publish(panel)
            }
        }
    }

    private func collapseReason() -> String {
        var parts: [String] = []
        if let s = signals.std_ratio, s < detector.minStdRatio { parts.append("std ratio \(String(format: "%.3f", s)) < \(detector.minStdRatio)") }
        if let r = signals.effective_rank, r < detector.minEffectiveRank { parts.append("effective rank \(String(format: "%.2f", r)) < \(detector.minEffectiveRank)") }
        return parts.joined(separator: ", ") + " for \(detector.steps)+ steps"
    }

    private func remember(_ z: Tensor) {
        let d = z.itemSize
        if d != dimension {
            dimension = d
            window = [Float](repeating: 0, count: config.rankWindow * d)
            windowNext = 0
            windowRows = 0
        }
        for i in 0..<z.batch {
            window.replaceSubrange((windowNext * d)..<((windowNext + 1) * d), with: z.storage[(i * d)..<((i + 1) * d)])
            windowNext = (windowNext + 1) % config.rankWindow
            windowRows = min(windowRows + 1, config.rankWindow)
        }
    }

    private func recordScalars(step: Int, measuredKNN: Bool) {
        let now = Date().timeIntervalSince1970
        let pairs = statistics.pairsTrained.load(ordering: .relaxed)
        var values: [String: Float] = [:]
        func put(_ tag: String, _ x: Float?) { if let x = finite(x) { values[tag] = x } }
        put("loss/total", signals.loss)
        put("loss/image", signals.image_loss)
        put("loss/audio", signals.audio_loss)
        put("loss/chance", signals.chance_loss)
        put("health/accuracy", signals.accuracy)
        put("health/std_ratio", signals.std_ratio)
        put("health/effective_rank", signals.effective_rank)
        put("health/alignment", signals.alignment)
        put("health/uniformity", signals.uniformity)
        put("optimizer/learning_rate", signals.learning_rate)
        if measuredKNN { put("knn/accuracy", signals.knn_accuracy) }
        if let last = lastRecord, now > last.time {
            put("throughput/pairs_per_second", Float(Double(pairs - last.pairs) / (now - last.time)))
        }
        lastRecord = (now, pairs)
        board.record(ScalarRecord(step: step, time: now, values: values))
    }
}

/// Builds the retrieval panel: the newest full frames in the replay buffer as queries, a random
/// sample of the buffer as the gallery, cosine neighbours under the current encoder's embedding.
enum RetrievalPanelBuilder {
    static let queries = 4, gallery = 96, neighbours = 5, thumbnail = 64

    static func build(step: Int, learner: Learner, exchange: ExampleExchange, input: EncoderInput.Video, rng: inout RandomSource) -> RetrievalPanel? {
        let (newest, sample) = exchange.peek(newest: queries * 4, sample: gallery, rng: &rng)
        let frames = { (e: TrainingExample) in e.kind != .tracked }
        var picked: [TrainingExample] = []
        for e in newest where frames(e) && picked.count < queries {
            // Queries from different moments: at least a second apart on the same source.
            if !picked.contains(where: { $0.origin.source == e.origin.source && abs($0.origin.time - e.origin.time) < 1 }) { picked.append(e) }
        }
        let candidates = sample.filter(frames)
        guard !picked.isEmpty, candidates.count >= 2 else { return nil }
        let all = picked + candidates
        let side = input.side
        var x: [Float] = []
        x.reserveCapacity(all.count * side * side * 3)
        for e in all { x += input.evaluationHWC(e.anchor) }
        let z = L2Normalize().infer(learner.video.embed(Tensor(shape: [all.count, side, side, 3], storage: x)))
        let d = z.itemSize
        func cosine(_ a: Int, _ b: Int) -> Float {
            var s: Float = 0
            for j in 0..<d { s += z.storage[a * d + j] * z.storage[b * d + j] }
            return s
        }
        func item(_ e: TrainingExample, _ c: Float?) -> RetrievalPanel.Item {
            .init(png: thumbnailPNG(e.anchor), source: e.origin.source, time: e.origin.time, cosine: c)
        }
        var out: [RetrievalPanel.Query] = []
        for (qi, q) in picked.enumerated() {
            // The query's own frame (same source and time) is not its neighbour.
            let ranked = candidates.indices
                .filter { !(candidates[$0].origin.source == q.origin.source && abs(candidates[$0].origin.time - q.origin.time) < 1e-6) }
                .map { (index: $0, cosine: cosine(qi, picked.count + $0)) }
                .sorted { $0.cosine > $1.cosine }
                .prefix(neighbours)
            out.append(.init(query: item(q, nil), neighbours: ranked.map { item(candidates[$0.index], $0.cosine) }))
        }
        return RetrievalPanel(step: step, time: Date().timeIntervalSince1970, queries: out)
    }

    /// The view scaled (box filter) to at most `thumbnail` pixels on its long side, as base64 PNG.
    static func thumbnailPNG(_ view: ImageView) -> String {
        let scale = max(1, (max(view.width, view.height) + thumbnail - 1) / thumbnail)
        let w = max(1, view.width / scale), h = max(1, view.height / scale)
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    var sum = 0
                    for dy in 0..<scale { for dx in 0..<scale { sum += Int(view.pixels[((y * scale + dy) * view.width + x * scale + dx) * 3 + c]) } }
                    rgb[(y * w + x) * 3 + c] = UInt8(sum / (scale * scale))
                }
            }
        }
        return Data(PNGImage.encode(rgb: rgb, width: w, height: h)).base64EncodedString()
    }
}
