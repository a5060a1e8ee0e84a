import Testing
import TemporalContrast

/// Random tensors and central finite differences for gradient checks.
struct Check {
    var rng: RandomSource

    init(seed: UInt64) { rng = RandomSource(seed: seed) }

    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in rng.normal() * scale })
    }

    /// A tensor whose values all stay at least `gap` away from 0 (no ReLU kink within ±gap).
    mutating func awayFromZero(_ shape: [Int], gap: Float = 0.05) -> Tensor {
        Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in
            let v = rng.normal()
            return v >= 0 ? v + gap : v - gap
        })
    }

    /// Σ r·f(x), accumulated in Double to keep finite differences clean.
    static func project(_ y: Tensor, _ r: Tensor) -> Double {
        zip(y.storage, r.storage).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// Checks a layer's input and parameter gradients against central differences: element-wise
    /// on `samples` coordinates of each tensor, and along one random direction of each.
    mutating func layer(
        _ layer: Layer, input: Tensor, epsilon: Float = 1e-2, directionalEpsilon: Float? = nil, tolerance: Double = 1e-2, samples: Int = 12,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let (y, cache) = layer.forward(input)
        let r = tensor(y.shape)
        for p in layer.parameters { p.zeroGradient() }
        let dx = layer.backward(r, cache: cache, inputGradient: true)!
        #expect(dx.shape == input.shape, sourceLocation: sourceLocation)
        let loss = { (x: Tensor) in Check.project(layer.infer(x), r) }
        // Input: sampled coordinates.
        for _ in 0..<samples {
            let i = rng.index(below: input.count)
            var plus = input, minus = input
            plus.storage[i] += epsilon
            minus.storage[i] -= epsilon
            let numeric = (loss(plus) - loss(minus)) / Double(2 * epsilon)
            Check.expectClose(Double(dx.storage[i]), numeric, tolerance, "d input[\(i)]", sourceLocation)
        }
        // Directions move every coordinate at once; a smaller step keeps ReLU units from crossing
        // their kink, which single-coordinate steps rarely do.
        let epsilon2 = directionalEpsilon ?? epsilon
        // Input: a random direction.
        let direction = tensor(input.shape)
        var plus = input, minus = input
        for i in 0..<input.count {
            plus.storage[i] += epsilon2 * direction.storage[i]
            minus.storage[i] -= epsilon2 * direction.storage[i]
        }
        let numericDirectional = (loss(plus) - loss(minus)) / Double(2 * epsilon2)
        Check.expectClose(Check.project(dx, direction), numericDirectional, tolerance, "d input · direction", sourceLocation)
        // Parameters.
        for p in layer.parameters {
            let analytic = p.gradient
            let saved = p.value
            for _ in 0..<min(samples, p.count) {
                let i = rng.index(below: p.count)
                p.value[i] = saved[i] + epsilon
                let a = loss(input)
                p.value[i] = saved[i] - epsilon
                let b = loss(input)
                p.value = saved
                Check.expectClose(Double(analytic[i]), (a - b) / Double(2 * epsilon), tolerance, "d \(p.name)[\(i)]", sourceLocation)
            }
            let d = tensor(p.shape)
            p.value = zip(saved, d.storage).map { $0 + epsilon2 * $1 }
            let a = loss(input)
            p.value = zip(saved, d.storage).map { $0 - epsilon2 * $1 }
            let b = loss(input)
            p.value = saved
            let dot = zip(analytic, d.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            Check.expectClose(dot, (a - b) / Double(2 * epsilon2), tolerance, "d \(p.name) · direction", sourceLocation)
        }
    }

    /// |a − b| ≤ tolerance · max(1, |a|, |b|).
    static func expectClose(_ analytic: Double, _ numeric: Double, _ tolerance: Double, _ what: String, _ location: SourceLocation) {
        let scale = max(1, abs(analytic), abs(numeric))
        #expect(abs(analytic - numeric) <= tolerance * scale, "\(what): analytic \(analytic) vs numeric \(numeric)", sourceLocation: location)
    }
}
