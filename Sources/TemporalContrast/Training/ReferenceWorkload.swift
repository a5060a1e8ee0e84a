/// The reference MoCo workload that benchmarks compare against (keep this definition exact):
/// the `reference` video encoder with its 256→256→128 projector and L2 normalisation, 64×64 RGB
/// inputs, batch 64 pairs, key-encoder momentum 0.99 (updated before computing keys), a queue of
/// 4096 keys, temperature 0.1, SGD lr 0.03, momentum 0.9, weight decay 1e-4.
public enum ReferenceWorkload {
    public static let batch = 64
    public static let imageSize = 64
    public static let queueSize = 4096

    /// A trainer configured as the reference workload.
    public static func makeTrainer(seed: UInt64) -> MoCoTrainer {
        var rng = RandomSource(seed: seed)
        let network = EmbeddingNetwork(architecture: .reference, rng: &rng)
        let queue = KeyQueue(randomCapacity: queueSize, dimension: network.head.output, rng: &rng)
        return MoCoTrainer(
            query: network, queue: queue, loss: MoCoLoss(temperature: 0.1),
            optimizer: SGD(momentum: 0.9, weightDecay: 1e-4, decayAll: true),
            schedule: WarmupConstantSchedule(baseRate: 0.03), momentum: 0.99)
    }

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
