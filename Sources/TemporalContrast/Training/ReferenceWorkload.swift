/// The reference MoCo workload that benchmarks compare against (keep this definition exact, and
/// `benchmarks/train_reference_torch.py` with it): the `reference` video encoder with its
/// 256→256→128 projector and L2 normalisation, 64×64 RGB inputs, batch 64 pairs, key-encoder
/// momentum 0.99 (updated before computing keys), a queue of 4096 keys, temperature 0.1, SGD lr 0.03
/// (no warm-up), momentum 0.9, weight decay 1e-4 on conv and linear weights (not on norms or
/// biases), no gradient clipping, no audio encoder.
///
/// It is a preset of the daemon's `Learner`: `bench train` times the same code the daemon trains
/// with.
public enum ReferenceWorkload {
    public static let batch = 64
    public static let imageSize = 64
    public static let queueSize = 4096

    /// The learner settings of the reference workload.
    public static func config(seed: UInt64) -> LearnerConfig {
        var c = LearnerConfig()
        c.video = .reference
        c.hidden = 256
        c.embedding = 128
        c.objective = .moco
        c.temperature = 0.1
        c.queue = queueSize
        c.keyMomentum = 0.99
        c.audioWeight = 0
        c.optimizer = .sgd
        c.learningRate = 0.03
        c.momentum = 0.9
        c.weightDecay = 1e-4
        c.warmupSteps = 0
        c.maxGradientNorm = 0
        c.seed = seed
        return c
    }

    /// A learner configured as the reference workload.
    public static func makeLearner(seed: UInt64) -> Learner { Learner(config: config(seed: seed)) }

    /// Multiply-add FLOPs (2 per MAC) of one pair of one step, counted as the PyTorch script in
    /// benchmarks/ counts them: query forward, query backward (2× except the first conv, which needs
    /// no input gradient), key forward, and the logits products (forward and dq).
    public static var flopsPerPair: Double {
        var convs: [Double] = []
        var size = imageSize
        for (cin, cout) in [(3, 32), (32, 64), (64, 128), (128, 256)] {
            size /= 2
            convs.append(2 * Double(cout * cin * 9 * size * size))
        }
        let projector = 2.0 * (256 * 256 + 256 * 128)
        let forward = convs.reduce(0, +) + projector
        let backward = 2 * forward - convs[0]
        let logits = 2 * (2.0 * 128 * Double(queueSize) + 2 * 128)
        return forward + backward + forward + logits
    }
}

/// The realistic workload: the largest video encoder the daemon offers (`resnet-small`) on 112×112
/// RGB inputs, batch 32 pairs, with every other setting as in `ReferenceWorkload`. Reproduced by
/// `benchmarks/train_reference_torch.py --preset resnet-small`.
public enum ResNetWorkload {
    public static let batch = 32
    public static let imageSize = 112

    public static func config(seed: UInt64) -> LearnerConfig {
        var c = ReferenceWorkload.config(seed: seed)
        c.video = .resnetSmall
        return c
    }
}
