/// MoCo v2 (He et al. 2020; Chen et al. 2020): the anchors' embeddings (queries) against the
/// positives' embeddings from a momentum copy of the network (keys), with a FIFO queue of past
/// keys as negatives; same-source keys within the mask window are masked.
///
/// Distributed: each rank's per-query loss is weighted by its share of the global pairs, and the
/// keys of every rank are enqueued in rank order (facebookresearch/moco's concat_all_gather), so
/// every rank's queue stays identical.
final class MoCo: JointEmbeddingMethod {
    let key: EmbeddingNetwork
    private(set) var queue: KeyQueue
    let momentum: Float
    let loss: MoCoLoss
    /// This step's keys, enqueued once the update is applied.
    private var pending: (keys: Tensor, origins: [SampleOrigin])?

    init(online: EmbeddingNetwork, queue capacity: Int, momentum: Float, temperature: Float, maskWindow: Double, embedding: Int, rng: inout RandomSource) {
        key = online.copy()
        queue = KeyQueue(randomCapacity: capacity, dimension: embedding, rng: &rng)
        self.momentum = momentum
        loss = MoCoLoss(temperature: temperature, maskWindow: maskWindow)
    }

    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep {
        key.momentumUpdate(from: online, momentum: momentum)
        pending = nil
        guard let (anchors, positives) = views.pair else { return .none }
        let (q, record) = online.forward(anchors)
        let k = key.embed(positives)
        pending = (k, views.origins)
        let r = loss(query: q, key: k, queue: queue, origins: views.knownOrigins)
        let share = context.share
        online.backward(context.ranks > 1 ? r.gradients[0].scaled(by: share) : r.gradients[0], record: record)
        return MethodStep(loss: r.loss, share: r.loss * share, health: r.health, embeddings: q)
    }

    func didUpdate(online: EmbeddingNetwork, context: MethodContext) {
        defer { pending = nil }
        if let collective = context.collective, context.ranks > 1, context.gatherUpdates {
            let d = queue.dimension, rows = pending?.keys.batch ?? 0
            let all = collective.allgather(pending?.keys.storage ?? []).flatMap { $0 }
            let origins = collective.allgather(Gathered.flatten(pending?.origins ?? [], rows: rows)).flatMap { $0 }
            guard all.count >= d else { return }
            queue.enqueue(Tensor(shape: [all.count / d, d], storage: all), origins: Gathered.unflatten(origins))
        } else if let pending {
            queue.enqueue(pending.keys, origins: pending.origins.isEmpty ? nil : pending.origins)
        }
    }

    /// The key network's parameters under "video_key.", the queue (times as float64 so they
    /// survive exactly: masking compares them with the window).
    func save(into file: inout SafeTensors) {
        for p in key.parameters { file.set("video_key.\(p.name)", shape: p.shape, values: p.value) }
        file.set("queue.keys", shape: [queue.capacity, queue.dimension], values: queue.keys)
        file.set("queue.sources", shape: [queue.capacity], values: queue.origins.map { Float($0.source) })
        file.set("queue.times", shape: [queue.capacity], doubles: queue.origins.map(\.time))
        file.metadata["queue.write_index"] = String(queue.writeIndex)
        file.metadata["queue.count"] = String(queue.count)
    }

    func restorer(from file: StateReader) throws(Learner.RestoreError) -> () -> Void {
        let values = try file.parameters(key.parameters, prefix: "video_key.")
        let (c, d) = (queue.capacity, queue.dimension)
        let keys = try file.floats("queue.keys", count: c * d, shape: [c, d])
        let sources = try file.floats("queue.sources", count: c)
        let times = try file.doubles("queue.times", count: c)
        // Source ids are 24-bit hashes, or -1 for the initial random keys.
        guard sources.allSatisfy({ $0 >= -1 && $0 < 16_777_216 && $0.rounded() == $0 }) else { throw file.fail("queue.sources holds values that are not source ids") }
        let w = try file.counter("queue.write_index", in: 0...(c - 1))
        let n = try file.counter("queue.count", in: 0...c)
        let origins = (0..<c).map { SampleOrigin(source: Int(sources[$0]), time: times[$0]) }
        let restored = KeyQueue(capacity: c, dimension: d, keys: keys, origins: origins, writeIndex: w, count: n)
        return { [self] in
            for (p, v) in values { p.value = v }
            queue = restored
        }
    }

    var queueFill: (entries: Int, capacity: Int)? { (queue.count, queue.capacity) }
}
