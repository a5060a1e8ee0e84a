import Glibc

/// Label-free health signals of a contrastive step.
///
/// - `accuracy`: fraction of anchors whose positive has the highest logit (top-1).
/// - `positiveCosine`, `negativeCosine`: mean cosine to the positive and to unmasked negatives.
/// - `embeddingStd`: mean over dimensions of the per-dimension standard deviation of the
///   L2-normalised embeddings: about 1/√d when healthy, near 0 when the embedding collapses.
/// - `alignment`: mean ‖q − k‖² over positive pairs (lower is better, Wang & Isola 2020).
/// - `uniformity`: log mean exp(−2‖x − y‖²) over distinct pairs of the batch (lower is better).
/// - `chanceLoss`: the loss of a guess uniform over the candidates, ln(K + 1) for K unmasked
///   negatives (averaged over rows): a loss stuck there has learned nothing.
public struct ContrastiveHealth: Sendable, Equatable, Codable {
    public var loss: Float = .nan
    public var chanceLoss: Float = .nan
    public var accuracy: Float = .nan
    public var positiveCosine: Float = .nan
    public var negativeCosine: Float = .nan
    public var embeddingStd: Float = .nan
    public var alignment: Float = .nan
    public var uniformity: Float = .nan

    public init() {}

    /// Spread signals of `anchors` and their alignment with `positives` (unit rows), filled in
    /// one place for every contrastive objective.
    mutating func describe(anchors: Tensor, positives: Tensor) {
        embeddingStd = Self.embeddingStd(anchors)
        alignment = Self.alignment(anchors, positives)
        uniformity = Self.uniformity(anchors)
    }

    /// The signals of a method without negatives, on raw projections `a`, `b` (normalised here):
    /// spread, alignment, uniformity and the mean cosine of the pairs.
    static func raw(loss: Float, _ a: Tensor, _ b: Tensor) -> ContrastiveHealth {
        var health = ContrastiveHealth()
        health.loss = loss
        let unitA = L2Normalize().infer(a), unitB = L2Normalize().infer(b)
        health.describe(anchors: unitA, positives: unitB)
        let n = a.batch, d = a.itemSize
        var cosine: Double = 0
        for i in 0..<n { for j in 0..<d { cosine += Double(unitA.storage[i * d + j] * unitB.storage[i * d + j]) } }
        health.positiveCosine = Float(cosine / Double(max(n, 1)))
        return health
    }

    /// Mean per-dimension standard deviation of the rows of `z` after L2 normalisation.
    public static func embeddingStd(_ z: Tensor) -> Float {
        let n = z.batch, d = z.itemSize
        guard n > 1 else { return .nan }
        let unit = L2Normalize().infer(z)
        var total: Double = 0
        for j in 0..<d {
            var mean: Double = 0, sq: Double = 0
            for i in 0..<n { mean += Double(unit.storage[i * d + j]) }
            mean /= Double(n)
            for i in 0..<n {
                let c = Double(unit.storage[i * d + j]) - mean
                sq += c * c
            }
            total += (sq / Double(n - 1)).squareRoot()
        }
        return Float(total / Double(d))
    }

    /// Mean ‖a_i − b_i‖² over rows (unit vectors: 2 − 2·cos).
    public static func alignment(_ a: Tensor, _ b: Tensor) -> Float {
        let d = a.itemSize
        var total: Double = 0
        for i in 0..<a.batch {
            for j in 0..<d {
                let diff = Double(a.storage[i * d + j] - b.storage[i * d + j])
                total += diff * diff
            }
        }
        return Float(total / Double(a.batch))
    }

    /// log mean exp(−2‖x_i − x_j‖²) over i < j, for unit rows (‖x_i − x_j‖² = 2 − 2·x_i·x_j).
    public static func uniformity(_ z: Tensor) -> Float {
        let n = z.batch, d = z.itemSize
        guard n > 1 else { return .nan }
        var gram = [Float](repeating: 0, count: n * n)
        GEMM.multiply(z.storage, z.storage, into: &gram, m: n, n: n, k: d, transposeB: true)
        var sum: Double = 0
        for i in 0..<n { for j in (i + 1)..<n { sum += exp(-2 * (2 - 2 * Double(gram[i * n + j]))) } }
        return Float(log(sum / Double(n * (n - 1) / 2)))
    }
}

/// Where an embedding came from, so negatives from the same source close in time can be masked:
/// they are likely the same content and would be false negatives.
public struct SampleOrigin: Sendable, Equatable, Codable {
    public var source: Int
    /// Seconds on the source's own timeline.
    public var time: Double

    public init(source: Int, time: Double) {
        self.source = source
        self.time = time
    }

    /// True when `other` is too close to this sample to serve as its negative.
    public func conflicts(with other: SampleOrigin, window: Double) -> Bool {
        source == other.source && abs(time - other.time) < window
    }
}

/// Softmax cross-entropy over rows of logits where column `target[i]` is the right answer and
/// entries equal to −∞ are masked out. Returns the mean loss and writes dL/dlogits (mean over rows)
/// in place of the logits; also counts rows whose target has the top logit, and gives the mean
/// chance loss ln(candidates) over rows (masked entries are not candidates).
func softmaxCrossEntropy(
    _ logits: UnsafeMutablePointer<Float>, rows: Int, columns: Int, target: (Int) -> Int, scale: Float = 1
) -> (loss: Double, correct: Int, chance: Double) {
    var loss: Double = 0
    var correct = 0
    var chance: Double = 0
    for r in 0..<rows {
        let row = logits + r * columns
        let t = target(r)
        var maxValue = -Float.infinity
        var best = -1
        for j in 0..<columns where row[j] > maxValue {
            maxValue = row[j]
            best = j
        }
        if best == t { correct += 1 }
        var sum: Double = 0
        var candidates = 0
        for j in 0..<columns {
            if row[j] != -.infinity { candidates += 1 }
            let e = row[j] == -.infinity ? 0 : exp(row[j] - maxValue)
            row[j] = e
            sum += Double(e)
        }
        chance += log(Double(max(candidates, 1)))
        let targetProbability = Double(row[t]) / sum
        loss -= log(max(targetProbability, 1e-38))
        let inv = Float(1 / sum) * scale / Float(rows)
        for j in 0..<columns { row[j] *= inv }
        row[t] -= scale / Float(rows)
    }
    return (loss / Double(rows), correct, chance / Double(rows))
}
