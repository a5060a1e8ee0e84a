import Glibc

/// SwAV (Caron et al. 2020): online clustering. Both views' projections, standardised over the
/// batch and L2-normalised (`StandardisedUnit`, the paper's BatchNorm head), are scored
/// against K prototypes; Sinkhorn-Knopp turns each view's scores into soft codes that spread the
/// batch evenly over the prototypes (ε = `swav_epsilon`, 3 iterations), and each view predicts
/// the other's codes: L = −½·mean_i [Σ_k q(a)_ik·log softmax(s(b)_i/τ)_k + Σ_k q(b)_ik·log softmax(s(a)_i/τ)_k],
/// τ = `swav_temperature`; codes are constants. A batch of a few dozen is small for an even
/// split over hundreds of prototypes, so the codes are computed together with a queue of the last
/// `swav_queue` projections once it is full (the paper's queue for small batches). The prototypes
/// stay frozen for the first `swav_freeze_steps` steps, as in the paper.
///
/// Distributed: on the embeddings of every rank (the codes need the whole batch, as the paper's
/// distributed Sinkhorn does): every rank computes the same loss, backpropagates its own rows into
/// the encoder, and adds 1/ranks of the prototypes' gradient, so the allreduce sums to one.
final class SwAV: JointEmbeddingMethod {
    let prototypes: Prototypes
    let temperature: Float, epsilon: Float
    let freezeSteps: Int
    let embedding: Int
    private(set) var queue: KeyQueue?
    private var pending: (Tensor, Tensor)?

    init(prototypes count: Int, temperature: Float, epsilon: Float, queue: Int, freezeSteps: Int, embedding: Int, rng: inout RandomSource) {
        prototypes = Prototypes(count: count, dimension: embedding, name: "swav.prototypes", rng: &rng)
        self.temperature = temperature
        self.epsilon = epsilon
        self.freezeSteps = freezeSteps
        self.embedding = embedding
        self.queue = queue > 0 ? KeyQueue(capacity: queue, dimension: embedding) : nil
    }

    var parameters: [Parameter] { [prototypes.weight] }

    /// Soft codes `[n, K]` of the first `n` rows of `scores` (`[m, K]`, m ≥ n): Sinkhorn-Knopp on
    /// exp(scores/ε), each prototype given an equal share of the m rows, each row summing to 1.
    static func codes(_ scores: Tensor, rows n: Int, epsilon: Float, iterations: Int = 3) -> [Float] {
        let m = scores.batch, k = scores.itemSize
        let top = scores.storage.max() ?? 0
        var q = scores.storage.map { Double(Glibc.exp(($0 - top) / epsilon)) }
        let total = q.reduce(0, +)
        for i in q.indices { q[i] /= total }
        for _ in 0..<iterations {
            for j in 0..<k {
                var s: Double = 0
                for i in 0..<m { s += q[i * k + j] }
                let f = s > 0 ? 1 / (s * Double(k)) : 0
                for i in 0..<m { q[i * k + j] *= f }
            }
            for i in 0..<m {
                var s: Double = 0
                for j in 0..<k { s += q[i * k + j] }
                let f = s > 0 ? 1 / (s * Double(m)) : 0
                for j in 0..<k { q[i * k + j] *= f }
            }
        }
        return (0..<(n * k)).map { Float(q[$0] * Double(m)) }
    }

    /// This view's scores, with the queue's rows under them when the queue is full.
    private func codes(for scores: Tensor) -> [Float] {
        guard let queue, queue.count == queue.capacity else { return Self.codes(scores, rows: scores.batch, epsilon: epsilon) }
        let (extra, _) = prototypes.scores(Tensor(shape: [queue.capacity, embedding], storage: queue.keys))
        let all = Tensor(shape: [scores.batch + queue.capacity, prototypes.count], storage: scores.storage + extra.storage)
        return Self.codes(all, rows: scores.batch, epsilon: epsilon)
    }

    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep {
        let qa = views.pair.map { online.forward($0.0) }, qb = views.pair.map { online.forward($0.1) }
        let all = Gathered(context.collective, qa?.embedding, qb?.embedding, origins: views.origins, width: embedding)
        let ua = StandardisedUnit(all.first), ub = StandardisedUnit(all.second)
        let (sa, ca) = prototypes.scores(ua.unit), (sb, cb) = prototypes.scores(ub.unit)
        let codesA = codes(for: sa), codesB = codes(for: sb)
        let (lb, gb) = softCrossEntropy(sb, temperature: temperature, targets: codesA)
        let (la, ga) = softCrossEntropy(sa, temperature: temperature, targets: codesB)
        let frozen = context.step < freezeSteps
        let prototypeScale = 0.5 / Float(context.ranks)
        let dza = ua.backward(prototypes.backward(ga, ca, scale: prototypeScale, frozen: frozen).scaled(by: 0.5))
        let dzb = ub.backward(prototypes.backward(gb, cb, scale: prototypeScale, frozen: frozen).scaled(by: 0.5))
        if let qa, let qb {
            online.backward(all.ownRows(of: dza), record: qa.record)
            online.backward(all.ownRows(of: dzb), record: qb.record)
        }
        pending = (ua.unit, ub.unit)
        let loss = 0.5 * (la + lb)
        return MethodStep(loss: loss, share: loss / Float(context.ranks), health: .raw(loss: loss, all.first, all.second),
                          embeddings: qa?.embedding)
    }

    /// Every rank holds the same gathered projections, so the queues stay the same.
    func didUpdate(online: EmbeddingNetwork, context: MethodContext) {
        defer { pending = nil }
        guard let (a, b) = pending, a.batch > 0 else { return }
        queue?.enqueue(a)
        queue?.enqueue(b)
    }

    func save(into file: inout SafeTensors) {
        guard let queue else { return }
        file.set("swav.queue", shape: [queue.capacity, queue.dimension], values: queue.keys)
        file.metadata["swav.queue.write_index"] = String(queue.writeIndex)
        file.metadata["swav.queue.count"] = String(queue.count)
    }

    func restorer(from file: StateReader) throws(Learner.RestoreError) -> () -> Void {
        guard let q = queue else { return {} }
        let keys = try file.floats("swav.queue", count: q.capacity * q.dimension, shape: [q.capacity, q.dimension])
        let w = try file.counter("swav.queue.write_index", in: 0...(q.capacity - 1))
        let n = try file.counter("swav.queue.count", in: 0...q.capacity)
        let restored = KeyQueue(capacity: q.capacity, dimension: q.dimension, keys: keys, origins: q.origins, writeIndex: w, count: n)
        return { [self] in queue = restored }
    }

    var queueFill: (entries: Int, capacity: Int)? { queue.map { ($0.count, $0.capacity) } }
}
