import Glibc

/// RankMe (Garrido et al. 2023): how many directions a set of embeddings really uses.
///
/// For embeddings Z (`[n, d]`, row-major) with singular values σ₁…σₘ (m = min(n, d)),
/// pₖ = σₖ / Σσ + ε and the effective rank is exp(−Σ pₖ ln pₖ): 1 when every row is the same
/// vector (a collapsed encoder), up to m when the spectrum is flat. The rows are used as they
/// are, not centred, as in the paper.
public enum EffectiveRank {
    /// - Parameters:
    ///   - rows: n·d values, row-major.
    ///   - dimension: d.
    /// - Returns: the effective rank, or nan when there are fewer than 2 rows or the rows are all 0.
    public static func of(_ rows: [Float], dimension d: Int) -> Float {
        precondition(d > 0 && rows.count % d == 0, "EffectiveRank: \(rows.count) values are not rows of \(d)")
        let n = rows.count / d
        guard n >= 2 else { return .nan }
        // The singular values of Z are the square roots of the eigenvalues of the smaller Gram
        // matrix, ZᵀZ (d × d) or ZZᵀ (n × n).
        let m = min(n, d)
        var gram = [Double](repeating: 0, count: m * m)
        rows.withUnsafeBufferPointer { z in
            for a in 0..<m {
                for b in a..<m {
                    var s: Double = 0
                    if n <= d {
                        for j in 0..<d { s += Double(z[a * d + j]) * Double(z[b * d + j]) }
                    } else {
                        for i in 0..<n { s += Double(z[i * d + a]) * Double(z[i * d + b]) }
                    }
                    gram[a * m + b] = s
                    gram[b * m + a] = s
                }
            }
        }
        let singular = SymmetricEigenvalues.of(&gram, size: m).map { max($0, 0).squareRoot() }
        let total = singular.reduce(0, +)
        guard total > 0 else { return .nan }
        var entropy: Double = 0
        for s in singular {
            let p = s / total + 1e-7
            entropy -= p * log(p)
        }
        return Float(exp(entropy))
    }
}

/// Eigenvalues of a real symmetric matrix by the cyclic Jacobi method: rotations that zero one
/// off-diagonal entry at a time until the off-diagonal mass is negligible. O(m³) per sweep and
/// a handful of sweeps; meant for the m ≤ a few hundred of an embedding width.
enum SymmetricEigenvalues {
    /// - Parameter a: m × m, row-major, symmetric; destroyed.
    /// - Returns: the m eigenvalues, in no particular order.
    static func of(_ a: inout [Double], size m: Int) -> [Double] {
        a.withUnsafeMutableBufferPointer { a in
            var scale: Double = 0
            for i in 0..<(m * m) { scale += a[i] * a[i] }
            guard scale > 0 else { return [Double](repeating: 0, count: m) }
            for _ in 0..<60 {
                var off: Double = 0
                for p in 0..<m { for q in (p + 1)..<m { off += a[p * m + q] * a[p * m + q] } }
                if off <= 1e-22 * scale { break }
                for p in 0..<m {
                    for q in (p + 1)..<m {
                        let apq = a[p * m + q]
                        if abs(apq) < 1e-300 { continue }
                        let theta = (a[q * m + q] - a[p * m + p]) / (2 * apq)
                        let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                        let c = 1 / (t * t + 1).squareRoot(), s = t * c
                        // A ← JᵀAJ on rows and columns p and q.
                        for k in 0..<m {
                            let akp = a[k * m + p], akq = a[k * m + q]
                            a[k * m + p] = c * akp - s * akq
                            a[k * m + q] = s * akp + c * akq
                        }
                        for k in 0..<m {
                            let apk = a[p * m + k], aqk = a[q * m + k]
                            a[p * m + k] = c * apk - s * aqk
                            a[q * m + k] = s * apk + c * aqk
                        }
                    }
                }
            }
            return (0..<m).map { a[$0 * m + $0] }
        }
    }
}
