/// One online MoCo learner: a query encoder trained by SGD, a momentum (EMA) key encoder, and a
/// key queue. `train` runs one step on a batch of (anchor, positive) pairs.
///
/// Order within a step (the reference workload): forward the query encoder on the anchors; update
/// the key encoder by momentum; embed the positives with it; MoCo loss over [positive, queue];
/// backward; guard against non-finite values; clip; optimizer step; enqueue the keys.
public final class MoCoTrainer {
    public let query: EmbeddingNetwork
    public let key: EmbeddingNetwork
    public var queue: KeyQueue
    public var loss: MoCoLoss
    public let optimizer: Optimizer
    public var schedule: WarmupConstantSchedule
    public var momentum: Float
    /// Clip the global gradient norm to this (nil: no clipping).
    public var maxGradientNorm: Float?
    public private(set) var step = 0
    public private(set) var skippedUpdates = 0

    public struct Report: Sendable {
        public var step: Int
        public var loss: Float
        public var health: ContrastiveHealth
        public var learningRate: Float
        public var gradientNorm: Float
        /// True when the update was skipped because the loss or a gradient was NaN or infinite.
        public var skipped: Bool
    }

    public init(
        query: EmbeddingNetwork, queue: KeyQueue, loss: MoCoLoss = MoCoLoss(), optimizer: Optimizer,
        schedule: WarmupConstantSchedule, momentum: Float = 0.99, maxGradientNorm: Float? = nil
    ) {
        self.query = query
        key = query.copy()
        self.queue = queue
        self.loss = loss
        self.optimizer = optimizer
        self.schedule = schedule
        self.momentum = momentum
        self.maxGradientNorm = maxGradientNorm
    }

    public func train(anchors: Tensor, positives: Tensor, origins: [SampleOrigin]? = nil) -> Report {
        let (q, record) = query.forward(anchors)
        key.momentumUpdate(from: query, momentum: momentum)
        let k = key.embed(positives)
        let result = loss(query: q, key: k, queue: queue, origins: origins)
        query.backward(result.gradients[0], record: record)
        let parameters = query.parameters
        let rate = schedule.rate(at: step)
        var report = Report(step: step, loss: result.loss, health: result.health, learningRate: rate, gradientNorm: .nan, skipped: false)
        if !GradientGuard.isFinite(loss: result.loss, parameters) {
            GradientGuard.zero(parameters)
            skippedUpdates += 1
            report.skipped = true
        } else {
            report.gradientNorm = maxGradientNorm.map { GradientGuard.clip(parameters, maxNorm: $0) } ?? GradientGuard.norm(parameters)
            optimizer.step(parameters, learningRate: rate)
            queue.enqueue(k, origins: origins)
        }
        step += 1
        return report
    }
}
