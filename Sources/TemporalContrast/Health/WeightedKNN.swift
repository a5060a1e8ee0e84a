import Glibc

/// Weighted k-nearest-neighbour classification on cosine similarity (Wu et al. 2018, as the
/// SSL literature's kNN monitor uses it): the k most similar labelled items vote for their class
/// with weight exp(s / T).
public enum WeightedKNN {
    /// Leave-one-out accuracy: each item is classified by all the others.
    ///
    /// - Parameters:
    ///   - features: n·d values, row-major (any scale: rows are L2-normalised here).
    ///   - labels: n class indices.
    ///   - k: neighbours (fewer when there are fewer other items).
    ///   - temperature: T of the vote weights.
    /// - Returns: the fraction classified right, or nan with fewer than 2 items.
    public static func leaveOneOutAccuracy(features: [Float], dimension d: Int, labels: [Int], k: Int = 20, temperature: Float = 0.07) -> Float {
        let n = labels.count
        precondition(features.count == n * d, "WeightedKNN: \(features.count) values for \(n) items of \(d)")
        guard n >= 2 else { return .nan }
        var unit = features
        for i in 0..<n {
            var s: Float = 0
            for j in 0..<d { s += unit[i * d + j] * unit[i * d + j] }
            let inv = s > 0 ? 1 / s.squareRoot() : 0
            for j in 0..<d { unit[i * d + j] *= inv }
        }
        var gram = [Float](repeating: 0, count: n * n)
        GEMM.multiply(unit, unit, into: &gram, m: n, n: n, k: d, transposeB: true)
        let classes = (labels.max() ?? 0) + 1
        var correct = 0
        for i in 0..<n {
            var others = (0..<n).filter { $0 != i }.map { (j: $0, s: gram[i * n + $0]) }
            others.sort { $0.s > $1.s || ($0.s == $1.s && $0.j < $1.j) }
            var votes = [Double](repeating: 0, count: classes)
            for o in others.prefix(k) { votes[labels[o.j]] += exp(Double(o.s / temperature)) }
            // Ties go to the lower class index: deterministic.
            var best = 0
            for c in 1..<classes where votes[c] > votes[best] { best = c }
            if best == labels[i] { correct += 1 }
        }
        return Float(correct) / Float(n)
    }
}
