/// MoCo's FIFO of keys from past batches: `capacity` unit vectors of `dimension` floats, each with
/// the `SampleOrigin` it came from so same-source, near-in-time entries can be masked as negatives.
///
/// Storage is one `[capacity, dimension]` array written round-robin at `writeIndex`; `count` grows
/// to `capacity` and stays there. All state is plain values, so a checkpoint restores it exactly.
public struct KeyQueue: Sendable, Equatable {
    public let capacity: Int
    public let dimension: Int
    public private(set) var keys: [Float]
    public private(set) var origins: [SampleOrigin]
    public private(set) var writeIndex = 0
    public private(set) var count = 0

    public init(capacity: Int, dimension: Int) {
        precondition(capacity > 0 && dimension > 0, "KeyQueue needs a positive capacity and dimension")
        self.capacity = capacity
        self.dimension = dimension
        keys = [Float](repeating: 0, count: capacity * dimension)
        origins = [SampleOrigin](repeating: SampleOrigin(source: -1, time: 0), count: capacity)
    }

    /// A queue filled with random unit vectors (MoCo's initial state), origins marked unknown (−1).
    public init(randomCapacity capacity: Int, dimension: Int, rng: inout RandomSource) {
        self.init(capacity: capacity, dimension: dimension)
        for i in 0..<capacity {
            var norm: Float = 0
            for j in 0..<dimension {
                let v = rng.normal()
                keys[i * dimension + j] = v
                norm += v * v
            }
            let inv = 1 / norm.squareRoot()
            for j in 0..<dimension { keys[i * dimension + j] *= inv }
        }
        count = capacity
    }

    /// Restores a queue from checkpointed state.
    public init(capacity: Int, dimension: Int, keys: [Float], origins: [SampleOrigin], writeIndex: Int, count: Int) {
        precondition(keys.count == capacity * dimension && origins.count == capacity && writeIndex < capacity && count <= capacity)
        self.capacity = capacity
        self.dimension = dimension
        self.keys = keys
        self.origins = origins
        self.writeIndex = writeIndex
        self.count = count
    }

    /// Appends the rows of `batch` (`[n, dimension]`), overwriting the oldest entries.
    public mutating func enqueue(_ batch: Tensor, origins batchOrigins: [SampleOrigin]? = nil) {
        precondition(batch.itemSize == dimension, "KeyQueue: keys must have \(dimension) values, got \(batch.itemSize)")
        for r in 0..<batch.batch {
            let dst = writeIndex * dimension
            for j in 0..<dimension { keys[dst + j] = batch.storage[r * dimension + j] }
            origins[writeIndex] = batchOrigins?[r] ?? SampleOrigin(source: -1, time: 0)
            writeIndex = (writeIndex + 1) % capacity
            count = min(count + 1, capacity)
        }
    }
}

/// MoCo's loss: for queries `q` and keys `k` (`[n, d]`, unit rows; keys from the momentum encoder,
/// no gradient), logits are [q·k, q·queueᵀ] / T and the loss is cross-entropy with the positive at
/// index 0, averaged over rows. Queue entries not yet written, or whose origin conflicts with the
/// query's (same source within `maskWindow` seconds), are masked out. Returns [dL/dq].
public struct MoCoLoss: Sendable {
    public var temperature: Float
    public var maskWindow: Double

    public init(temperature: Float = 0.1, maskWindow: Double = 0) {
        self.temperature = temperature
        self.maskWindow = maskWindow
    }

    public func callAsFunction(query q: Tensor, key k: Tensor, queue: KeyQueue, origins: [SampleOrigin]? = nil) -> ObjectiveResult {
        precondition(q.shape == k.shape && q.itemSize == queue.dimension, "MoCo: q, k must be [n, \(queue.dimension)]")
        let n = q.batch, d = q.itemSize, size = queue.capacity, columns = 1 + size
        var negatives = [Float](repeating: 0, count: n * size)
        GEMM.multiply(q.storage, queue.keys, into: &negatives, m: n, n: size, k: d, transposeB: true, alpha: 1 / temperature)
        var logits = [Float](repeating: 0, count: n * columns)
        var positiveSum: Double = 0, negativeSum: Double = 0, negativeCount = 0
        let filled = queue.count
        for i in 0..<n {
            var dot: Float = 0
            for j in 0..<d { dot += q.storage[i * d + j] * k.storage[i * d + j] }
            positiveSum += Double(dot)
            logits[i * columns] = dot / temperature
            for j in 0..<size {
                // Before the queue is full, slots at and after the write pointer are empty.
                let empty = filled < size && j >= filled
                let masked = empty || (origins.map { queue.origins[j].conflicts(with: $0[i], window: maskWindow) } ?? false)
                let value = negatives[i * size + j]
                logits[i * columns + 1 + j] = masked ? -.infinity : value
                if !masked {
                    negativeSum += Double(value * temperature)
                    negativeCount += 1
                }
            }
        }
        let (loss, correct, chance) = logits.withUnsafeMutableBufferPointer {
            softmaxCrossEntropy($0.baseAddress!, rows: n, columns: columns, target: { _ in 0 })
        }
        // dq = (G_pos·k + G_neg·queue) / T
        var dq = [Float](repeating: 0, count: n * d)
        var gradNegatives = [Float](repeating: 0, count: n * size)
        for i in 0..<n {
            let g = logits[i * columns]
            for j in 0..<d { dq[i * d + j] = g * k.storage[i * d + j] / temperature }
            for j in 0..<size { gradNegatives[i * size + j] = logits[i * columns + 1 + j] }
        }
        GEMM.multiply(gradNegatives, queue.keys, into: &dq, m: n, n: d, k: size, alpha: 1 / temperature, beta: 1)
        var health = ContrastiveHealth()
        health.loss = Float(loss)
        health.chanceLoss = Float(chance)
        health.accuracy = Float(correct) / Float(n)
        health.positiveCosine = Float(positiveSum / Double(n))
        health.negativeCosine = negativeCount > 0 ? Float(negativeSum / Double(negativeCount)) : .nan
        health.describe(anchors: q, positives: k)
        return ObjectiveResult(loss: Float(loss), gradients: [Tensor(shape: [n, d], storage: dq)], health: health)
    }
}
