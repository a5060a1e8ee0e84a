import Glibc

/// NT-Xent / InfoNCE with in-batch negatives (SimCLR): for embeddings `a` and `b` of shape
/// `[n, d]`, unit rows, the 2n rows of [a; b] each take their counterpart as the positive and the
/// other 2n − 2 rows as negatives; logits are cosines / temperature; the loss is the mean
/// cross-entropy over the 2n rows. Negatives whose `SampleOrigin` conflicts with the anchor's
/// (same source within `maskWindow` seconds) are masked out.
///
/// Gradients: with P the row-softmax and Y the positives' one-hot, dL/dZ = (G + Gᵀ)·Z / (T·2n),
/// G = P − Y; returned as [dL/da, dL/db].
public struct InfoNCELoss: Sendable {
    public var temperature: Float
    public var maskWindow: Double

    public init(temperature: Float = 0.1, maskWindow: Double = 0) {
        self.temperature = temperature
        self.maskWindow = maskWindow
    }

    public func callAsFunction(_ a: Tensor, _ b: Tensor, origins: [SampleOrigin]? = nil) -> ObjectiveResult {
        precondition(a.shape == b.shape && a.rank == 2, "InfoNCE: a and b must both be [n, d], got \(a.shape) and \(b.shape)")
        let n = a.batch, d = a.itemSize, m = 2 * n
        let z = Tensor.concatenate([a, b])
        var logits = [Float](repeating: 0, count: m * m)
        GEMM.multiply(z.storage, z.storage, into: &logits, m: m, n: m, k: d, transposeB: true, alpha: 1 / temperature)
        var positive: Double = 0, negative: Double = 0, negatives = 0
        for i in 0..<m {
            let p = (i + n) % m
            positive += Double(logits[i * m + p] * temperature)
            for j in 0..<m where j != i && j != p {
                let masked = origins.map { $0[i % n].conflicts(with: $0[j % n], window: maskWindow) } ?? false
                if masked {
                    logits[i * m + j] = -.infinity
                } else {
                    negative += Double(logits[i * m + j] * temperature)
                    negatives += 1
                }
            }
            logits[i * m + i] = -.infinity
        }
        let (loss, correct, chance) = logits.withUnsafeMutableBufferPointer {
            softmaxCrossEntropy($0.baseAddress!, rows: m, columns: m, target: { ($0 + n) % m })
        }
        // G is now in `logits` (already divided by the row count); symmetrise and project.
        var symmetric = logits
        for i in 0..<m { for j in 0..<m { symmetric[i * m + j] = logits[i * m + j] + logits[j * m + i] } }
        var dz = [Float](repeating: 0, count: m * d)
        GEMM.multiply(symmetric, z.storage, into: &dz, m: m, n: d, k: m, alpha: 1 / temperature)
        var health = ContrastiveHealth()
        health.loss = Float(loss)
        health.chanceLoss = Float(chance)
        health.accuracy = Float(correct) / Float(m)
        health.positiveCosine = Float(positive / Double(m))
        health.negativeCosine = negatives > 0 ? Float(negative / Double(negatives)) : .nan
        health.describe(anchors: a, positives: b)
        let grad = Tensor(shape: [m, d], storage: dz)
        return ObjectiveResult(loss: Float(loss), gradients: [grad.rows(0..<n), grad.rows(n..<m)], health: health)
    }
}

/// Cross-modal InfoNCE between video embeddings `v` and audio embeddings `a` (`[n, d]`, unit rows):
/// row i of each is a positive pair, every other row of the other modality a negative. The loss
/// averages both directions (video→audio over rows, audio→video over columns of v·aᵀ/T).
/// Returns [dL/dv, dL/da].
public struct CrossModalInfoNCELoss: Sendable {
    public var temperature: Float
    public var maskWindow: Double

    public init(temperature: Float = 0.1, maskWindow: Double = 0) {
        self.temperature = temperature
        self.maskWindow = maskWindow
    }

    public func callAsFunction(video v: Tensor, audio a: Tensor, origins: [SampleOrigin]? = nil) -> ObjectiveResult {
        precondition(v.shape == a.shape && v.rank == 2, "CrossModalInfoNCE: v and a must both be [n, d]")
        let n = v.batch, d = v.itemSize
        var s = [Float](repeating: 0, count: n * n)
        GEMM.multiply(v.storage, a.storage, into: &s, m: n, n: n, k: d, transposeB: true, alpha: 1 / temperature)
        var negative: Double = 0, negatives = 0, positive: Double = 0
        for i in 0..<n {
            positive += Double(s[i * n + i] * temperature)
            for j in 0..<n where j != i {
                if let origins, origins[i].conflicts(with: origins[j], window: maskWindow) {
                    s[i * n + j] = -.infinity
                } else {
                    negative += Double(s[i * n + j] * temperature)
                    negatives += 1
                }
            }
        }
        var rowsGrad = s
        var columns = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { columns[j * n + i] = s[i * n + j] } }
        let (l1, c1, chance1) = rowsGrad.withUnsafeMutableBufferPointer { softmaxCrossEntropy($0.baseAddress!, rows: n, columns: n, target: { $0 }, scale: 0.5) }
        let (l2, c2, chance2) = columns.withUnsafeMutableBufferPointer { softmaxCrossEntropy($0.baseAddress!, rows: n, columns: n, target: { $0 }, scale: 0.5) }
        // dS = ½·G_rows + ½·G_colsᵀ
        var ds = rowsGrad
        for i in 0..<n { for j in 0..<n { ds[i * n + j] += columns[j * n + i] } }
        var dv = [Float](repeating: 0, count: n * d), da = dv
        GEMM.multiply(ds, a.storage, into: &dv, m: n, n: d, k: n, alpha: 1 / temperature)
        GEMM.multiply(ds, v.storage, into: &da, m: n, n: d, k: n, transposeA: true, alpha: 1 / temperature)
        let loss = Float((l1 + l2) / 2)
        var health = ContrastiveHealth()
        health.loss = loss
        health.chanceLoss = Float((chance1 + chance2) / 2)
        health.accuracy = Float(c1 + c2) / Float(2 * n)
        health.positiveCosine = Float(positive / Double(n))
        health.negativeCosine = negatives > 0 ? Float(negative / Double(negatives)) : .nan
        health.describe(anchors: v, positives: a)
        return ObjectiveResult(loss: loss, gradients: [Tensor(shape: [n, d], storage: dv), Tensor(shape: [n, d], storage: da)], health: health)
    }
}
