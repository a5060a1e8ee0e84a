/// Layer normalisation over the last dimension of `[rows, features]` (or any shape: every run of
/// `features` values is one row), with per-feature `gamma` and `beta`.
public final class LayerNorm: Layer {
    public let gamma: Parameter
    public let beta: Parameter
    public let features: Int
    public let epsilon: Float

    public init(features: Int, epsilon: Float = 1e-5, name: String) {
        self.features = features
        self.epsilon = epsilon
        gamma = Parameter(name: "\(name).weight", shape: [features], value: [Float](repeating: 1, count: features), decays: false)
        beta = Parameter(name: "\(name).bias", shape: [features], value: [Float](repeating: 0, count: features), decays: false)
    }

    public var parameters: [Parameter] { [gamma, beta] }

    final class Cache: LayerCache {
        let xhat: [Float], rstd: [Float]
        init(xhat: [Float], rstd: [Float]) {
            self.xhat = xhat
            self.rstd = rstd
        }
    }

    private func normalize(_ input: Tensor) -> (Tensor, [Float], [Float]) {
        let d = features, rows = input.count / d
        precondition(input.shape.last == d, "LayerNorm \(gamma.name): last dimension must be \(d), got \(input.shape)")
        var xhat = input.storage, rstd = [Float](repeating: 0, count: rows)
        var y = input
        for r in 0..<rows {
            var mean: Double = 0, sq: Double = 0
            for j in 0..<d { mean += Double(input.storage[r * d + j]) }
            mean /= Double(d)
            for j in 0..<d {
                let c = Double(input.storage[r * d + j]) - mean
                sq += c * c
            }
            let inv = Float(1 / (sq / Double(d) + Double(epsilon)).squareRoot())
            rstd[r] = inv
            for j in 0..<d {
                let h = (input.storage[r * d + j] - Float(mean)) * inv
                xhat[r * d + j] = h
                y.storage[r * d + j] = h * gamma.value[j] + beta.value[j]
            }
        }
        return (y, xhat, rstd)
    }

    public func infer(_ input: Tensor) -> Tensor { normalize(input).0 }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) {
        let (y, xhat, rstd) = normalize(input)
        return (y, Cache(xhat: xhat, rstd: rstd))
    }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        let cache = cache as! Cache
        let d = features, rows = gradOutput.count / d
        var dx = gradOutput
        for r in 0..<rows {
            var a: Float = 0, b: Float = 0
            for j in 0..<d {
                let g = gradOutput.storage[r * d + j], h = cache.xhat[r * d + j]
                gamma.gradient[j] += g * h
                beta.gradient[j] += g
                a += g * gamma.value[j]
                b += g * gamma.value[j] * h
            }
            for j in 0..<d {
                let g = gradOutput.storage[r * d + j] * gamma.value[j], h = cache.xhat[r * d + j]
                dx.storage[r * d + j] = cache.rstd[r] * (g - a / Float(d) - h * b / Float(d))
            }
        }
        return inputGradient ? dx : nil
    }
}
