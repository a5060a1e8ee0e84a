/// VICReg (Bardes, Ponce & LeCun 2022), the non-contrastive objective: for two views' embeddings
/// `a`, `b` (`[n, d]`, not normalised, n ≥ 2)
///
///   L = λ·mean((a − b)²) + μ·[v(a) + v(b)] + ν·[c(a) + c(b)],
///   v(z) = mean_j max(0, γ − √(Var_j(z) + ε)),   c(z) = Σ_{i≠j} Cov(z)²_ij / d,
///
/// with unbiased (n − 1) variance and covariance. Defaults λ = μ = 25, ν = 1, γ = 1, ε = 1e-4.
/// Returns [dL/da, dL/db]. The variance term is what keeps the embedding from collapsing.
public struct VICRegLoss: Sendable {
    public var invariance: Float = 25
    public var variance: Float = 25
    public var covariance: Float = 1
    public var gamma: Float = 1
    public var epsilon: Float = 1e-4

    public init(invariance: Float = 25, variance: Float = 25, covariance: Float = 1) {
        self.invariance = invariance
        self.variance = variance
        self.covariance = covariance
    }

    public func callAsFunction(_ a: Tensor, _ b: Tensor) -> ObjectiveResult {
        precondition(a.shape == b.shape && a.rank == 2 && a.batch > 1, "VICReg: a and b must both be [n ≥ 2, d]")
        let n = a.batch, d = a.itemSize
        var da = [Float](repeating: 0, count: n * d), db = da
        var mse: Double = 0
        for i in 0..<(n * d) {
            let diff = a.storage[i] - b.storage[i]
            mse += Double(diff * diff)
            let g = 2 * invariance * diff / Float(n * d)
            da[i] += g
            db[i] -= g
        }
        mse /= Double(n * d)
        let (va, ca) = regularise(a, into: &da)
        let (vb, cb) = regularise(b, into: &db)
        let loss = invariance * Float(mse) + variance * (va + vb) + covariance * (ca + cb)
        let health = ContrastiveHealth.raw(loss: loss, a, b)
        return ObjectiveResult(loss: loss, gradients: [Tensor(shape: [n, d], storage: da), Tensor(shape: [n, d], storage: db)], health: health)
    }

    /// The variance and covariance terms of one view; adds their gradients into `grad`.
    private func regularise(_ z: Tensor, into grad: inout [Float]) -> (Float, Float) {
        let n = z.batch, d = z.itemSize
        var centred = z.storage
        for j in 0..<d {
            var mean: Float = 0
            for i in 0..<n { mean += z.storage[i * d + j] }
            mean /= Float(n)
            for i in 0..<n { centred[i * d + j] -= mean }
        }
        var cov = [Float](repeating: 0, count: d * d)
        GEMM.multiply(centred, centred, into: &cov, m: d, n: d, k: n, transposeA: true, alpha: 1 / Float(n - 1))
        var v: Float = 0
        for j in 0..<d {
            let std = (cov[j * d + j] + epsilon).squareRoot()
            if std < gamma {
                v += gamma - std
                // d/dz_ij of −std_j/d = −(1/d)·(1/(2·std_j))·2·centred_ij/(n − 1)
                let g = -variance / Float(d) / std / Float(n - 1)
                for i in 0..<n { grad[i * d + j] += g * centred[i * d + j] }
            }
        }
        v /= Float(d)
        var c: Float = 0
        var gCov = [Float](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in 0..<d where i != j {
                c += cov[i * d + j] * cov[i * d + j]
                gCov[i * d + j] = 2 * cov[i * d + j] / Float(d)
            }
        }
        c /= Float(d)
        // dc/dZ = 2·Zc·G / (n − 1) for symmetric G; centring adds nothing (columns of Zc sum to 0).
        GEMM.multiply(centred, gCov, into: &grad, m: n, n: d, k: d, alpha: 2 * covariance / Float(n - 1), beta: 1)
        return (v, c)
    }
}
