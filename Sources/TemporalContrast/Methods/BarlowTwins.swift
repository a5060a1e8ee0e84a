/// Barlow Twins (Zbontar et al. 2021): each view's projections `[n, d]` standardised per dimension
/// over the batch (mean 0, biased variance 1, ε = 1e-5: the paper's affine-free BatchNorm), their
/// cross-correlation C = ÂᵀB̂ / n, and
///
///   L = Σ_i (1 − C_ii)² + λ·Σ_{i≠j} C_ij²
///
/// (default λ = 0.0051). The diagonal makes the views agree; the off-diagonal terms decorrelate
/// the dimensions, which is what prevents collapse. Returns [dL/da, dL/db].
public struct BarlowTwinsLoss: Sendable {
    public var lambda: Float
    public var epsilon: Float = 1e-5

    public init(lambda: Float = 0.0051) { self.lambda = lambda }

    public func callAsFunction(_ a: Tensor, _ b: Tensor) -> ObjectiveResult {
        precondition(a.shape == b.shape && a.rank == 2 && a.batch > 1, "Barlow Twins: a and b must both be [n ≥ 2, d]")
        let n = a.batch, d = a.itemSize
        let (na, sa) = standardise(a), (nb, sb) = standardise(b)
        var c = [Float](repeating: 0, count: d * d)
        GEMM.multiply(na, nb, into: &c, m: d, n: d, k: n, transposeA: true, alpha: 1 / Float(n))
        var loss: Double = 0
        var g = [Float](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in 0..<d {
                let v = c[i * d + j]
                if i == j {
                    loss += Double((1 - v) * (1 - v))
                    g[i * d + j] = -2 * (1 - v)
                } else {
                    loss += Double(lambda * v * v)
                    g[i * d + j] = 2 * lambda * v
                }
            }
        }
        // dL/dÂ = B̂·Gᵀ / n, dL/dB̂ = Â·G / n, then back through each standardisation.
        var dA = [Float](repeating: 0, count: n * d), dB = dA
        GEMM.multiply(nb, g, into: &dA, m: n, n: d, k: d, transposeB: true, alpha: 1 / Float(n))
        GEMM.multiply(na, g, into: &dB, m: n, n: d, k: d, alpha: 1 / Float(n))
        unstandardise(&dA, normalised: na, std: sa, n: n, d: d)
        unstandardise(&dB, normalised: nb, std: sb, n: n, d: d)
        return ObjectiveResult(loss: Float(loss), gradients: [Tensor(shape: [n, d], storage: dA), Tensor(shape: [n, d], storage: dB)],
                               health: .raw(loss: Float(loss), a, b))
    }

    /// Columns of `z` to mean 0 and (biased) variance 1; also each column's σ = √(var + ε).
    private func standardise(_ z: Tensor) -> ([Float], [Float]) {
        let n = z.batch, d = z.itemSize
        var out = z.storage, std = [Float](repeating: 0, count: d)
        for j in 0..<d {
            var mean: Double = 0
            for i in 0..<n { mean += Double(z.storage[i * d + j]) }
            mean /= Double(n)
            var variance: Double = 0
            for i in 0..<n {
                let c = Double(z.storage[i * d + j]) - mean
                variance += c * c
            }
            let s = (variance / Double(n) + Double(epsilon)).squareRoot()
            std[j] = Float(s)
            for i in 0..<n { out[i * d + j] = Float((Double(z.storage[i * d + j]) - mean) / s) }
        }
        return (out, std)
    }

    /// dL/dz from dL/dẑ for ẑ = (z − μ)/σ over each column: (g − mean(g) − ẑ·mean(g ⊙ ẑ)) / σ.
    private func unstandardise(_ g: inout [Float], normalised zh: [Float], std: [Float], n: Int, d: Int) {
        for j in 0..<d {
            var mean: Double = 0, dot: Double = 0
            for i in 0..<n {
                mean += Double(g[i * d + j])
                dot += Double(g[i * d + j] * zh[i * d + j])
            }
            mean /= Double(n)
            dot /= Double(n)
            for i in 0..<n { g[i * d + j] = Float((Double(g[i * d + j]) - mean - Double(zh[i * d + j]) * dot) / Double(std[j])) }
        }
    }
}

/// Barlow Twins on the raw projections; distributed, on the embeddings of every rank (the paper
/// standardises with synchronised batch statistics and sums C over the GPUs, which is the same).
final class BarlowTwins: JointEmbeddingMethod {
    let loss: BarlowTwinsLoss
    let embedding: Int

    init(lambda: Float, embedding: Int) {
        loss = BarlowTwinsLoss(lambda: lambda)
        self.embedding = embedding
    }

    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep {
        .inBatch(views, online: online, context: context, width: embedding) { a, b, _ in loss(a, b) }
    }
}
