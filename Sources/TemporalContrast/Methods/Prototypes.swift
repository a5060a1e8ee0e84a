import Glibc

/// K prototypes of DINO's last layer and SwAV's clustering: the rows of `weight` (`[K, d]`)
/// normalised to unit length score unit embeddings, s = z·Ŵᵀ (a weight-normalised linear layer
/// with its gain fixed at 1, DINO's `norm_last_layer`). The gradient flows through the
/// normalisation, so it moves each prototype along the sphere.
final class Prototypes {
    let weight: Parameter
    let count: Int, dimension: Int

    init(count: Int, dimension: Int, name: String, rng: inout RandomSource) {
        self.count = count
        self.dimension = dimension
        let bound = 1 / Float(dimension).squareRoot()
        weight = Parameter(name: name, shape: [count, dimension], value: (0..<(count * dimension)).map { _ in rng.uniform(-bound, bound) },
                           decays: true)
    }

    /// The unit rows of `values` and each row's norm.
    static func normalised(_ values: [Float], dimension d: Int) -> (unit: [Float], norms: [Float]) {
        let k = values.count / d
        var unit = values, norms = [Float](repeating: 0, count: k)
        for r in 0..<k {
            var s: Float = 0
            for j in 0..<d { s += values[r * d + j] * values[r * d + j] }
            let n = max(s.squareRoot(), 1e-12)
            norms[r] = n
            for j in 0..<d { unit[r * d + j] /= n }
        }
        return (unit, norms)
    }

    /// What `backward` needs of one scoring.
    struct Scoring {
        let input: Tensor
        let unit: [Float]
        let norms: [Float]
    }

    /// Scores `[n, K]` of `z` (`[n, d]`) against the normalised rows of `values` (this layer's
    /// weights by default; a teacher's copy for DINO).
    func scores(_ z: Tensor, values: [Float]? = nil) -> (Tensor, Scoring) {
        let (unit, norms) = Self.normalised(values ?? weight.value, dimension: dimension)
        var s = Tensor(zeros: [z.batch, count])
        GEMM.multiply(z.storage, unit, into: &s.storage, m: z.batch, n: count, k: dimension, transposeB: true)
        return (s, Scoring(input: z, unit: unit, norms: norms))
    }

    /// Adds `scale`·dL/dW (through the normalisation) to the weight's gradient, unless `frozen`;
    /// returns dL/dz.
    func backward(_ gradScores: Tensor, _ scoring: Scoring, scale: Float = 1, frozen: Bool = false) -> Tensor {
        let n = scoring.input.batch, d = dimension, k = count
        var dz = Tensor(zeros: [n, d])
        GEMM.multiply(gradScores.storage, scoring.unit, into: &dz.storage, m: n, n: d, k: k)
        guard !frozen else { return dz }
        // dŴ = dSᵀ·z, then dW_r = (dŴ_r − Ŵ_r·(Ŵ_r · dŴ_r)) / ‖W_r‖.
        var dUnit = [Float](repeating: 0, count: k * d)
        GEMM.multiply(gradScores.storage, scoring.input.storage, into: &dUnit, m: k, n: d, k: n, transposeA: true)
        for r in 0..<k {
            var dot: Float = 0
            for j in 0..<d { dot += scoring.unit[r * d + j] * dUnit[r * d + j] }
            let inv = scale / scoring.norms[r]
            for j in 0..<d { weight.gradient[r * d + j] += (dUnit[r * d + j] - scoring.unit[r * d + j] * dot) * inv }
        }
        return dz
    }
}

/// Row-wise softmax of `logits / temperature` (`[n, K]`), in double precision per row.
func softmaxRows(_ logits: Tensor, temperature: Float, shift: [Float]? = nil) -> [Float] {
    let n = logits.batch, k = logits.itemSize
    var out = [Float](repeating: 0, count: n * k)
    for i in 0..<n {
        var m = -Float.infinity
        for j in 0..<k { m = max(m, (logits.storage[i * k + j] - (shift?[j] ?? 0)) / temperature) }
        var sum: Double = 0
        for j in 0..<k {
            let e = Double(Glibc.exp((logits.storage[i * k + j] - (shift?[j] ?? 0)) / temperature - m))
            out[i * k + j] = Float(e)
            sum += e
        }
        for j in 0..<k { out[i * k + j] = Float(Double(out[i * k + j]) / sum) }
    }
    return out
}

/// −mean over rows of Σ_k target_k·log softmax(logits/T)_k, and dL/dlogits; `targets` rows sum to 1.
func softCrossEntropy(_ logits: Tensor, temperature: Float, targets: [Float]) -> (loss: Float, gradient: Tensor) {
    let n = logits.batch, k = logits.itemSize
    let p = softmaxRows(logits, temperature: temperature)
    var loss: Double = 0
    var grad = [Float](repeating: 0, count: n * k)
    for i in 0..<n {
        for j in 0..<k {
            let t = targets[i * k + j]
            if t > 0 { loss -= Double(t) * log(max(Double(p[i * k + j]), 1e-30)) }
            grad[i * k + j] = (p[i * k + j] - t) / temperature / Float(n)
        }
    }
    return (Float(loss / Double(n)), Tensor(shape: [n, k], storage: grad))
}

/// Projections as the heads of SwAV and DINO hand them to the prototypes: standardised per
/// feature over the batch (a BatchNorm without scale and shift, in training mode), then L2
/// normalised. Without it, a freshly initialised encoder (GroupNorm, no BatchNorm) maps every
/// frame to nearly one direction (cosines near 0.9): the codes and the teacher's sharpened
/// outputs then barely tell rows apart, and the swapped prediction pulls every row to the same
/// flat answer within a hundred steps. Standardising removes what all rows share; the method owns
/// it, so the exported encoder is unchanged.
struct StandardisedUnit {
    let unit: Tensor
    private let standardised: [Float]
    private let inverseStd: [Float]
    private let norms: [Float]
    static let epsilon: Float = 1e-5

    init(_ x: Tensor) {
        let n = x.batch, d = x.itemSize
        var y = x.storage, inverse = [Float](repeating: 0, count: d)
        if n > 0 {
            for j in 0..<d {
                var mean: Double = 0
                for i in 0..<n { mean += Double(x.storage[i * d + j]) }
                mean /= Double(n)
                var variance: Double = 0
                for i in 0..<n { variance += (Double(x.storage[i * d + j]) - mean) * (Double(x.storage[i * d + j]) - mean) }
                variance /= Double(n)
                let s = 1 / (variance + Double(Self.epsilon)).squareRoot()
                inverse[j] = Float(s)
                for i in 0..<n { y[i * d + j] = Float((Double(x.storage[i * d + j]) - mean) * s) }
            }
        }
        let (u, norms) = Prototypes.normalised(y, dimension: d)
        unit = Tensor(shape: [n, d], storage: u)
        standardised = y
        inverseStd = inverse
        self.norms = norms
    }

    /// dL/dx for dL/dunit.
    func backward(_ gradUnit: Tensor) -> Tensor {
        let n = unit.batch, d = unit.itemSize
        guard n > 0 else { return gradUnit }
        // Through the normalisation: dy = (g − u·(u·g)) / ‖y‖.
        var dy = [Float](repeating: 0, count: n * d)
        for i in 0..<n {
            var dot: Float = 0
            for j in 0..<d { dot += unit.storage[i * d + j] * gradUnit.storage[i * d + j] }
            for j in 0..<d { dy[i * d + j] = (gradUnit.storage[i * d + j] - unit.storage[i * d + j] * dot) / norms[i] }
        }
        // Through the standardisation: dx = s·(dy − mean(dy) − ŷ·mean(dy·ŷ)), per feature.
        var dx = [Float](repeating: 0, count: n * d)
        for j in 0..<d {
            var mean: Double = 0, meanProduct: Double = 0
            for i in 0..<n {
                mean += Double(dy[i * d + j])
                meanProduct += Double(dy[i * d + j]) * Double(standardised[i * d + j])
            }
            mean /= Double(n)
            meanProduct /= Double(n)
            for i in 0..<n {
                dx[i * d + j] = inverseStd[j] * Float(Double(dy[i * d + j]) - mean - Double(standardised[i * d + j]) * meanProduct)
            }
        }
        return Tensor(shape: [n, d], storage: dx)
    }
}
