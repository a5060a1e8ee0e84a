import Glibc

/// Updates parameters from their accumulated gradients, then zeroes the gradients.
///
/// State (momentum buffers, Adam moments) is keyed by parameter name so a checkpoint can store and
/// restore it exactly.
public protocol Optimizer: AnyObject {
    func step(_ parameters: [Parameter], learningRate: Float)
    /// Per-parameter state arrays, e.g. "momentum.<name>" → values, for checkpoints.
    var state: [String: [Float]] { get set }
    /// Update count (Adam's bias correction uses it).
    var steps: Int { get set }
}

/// SGD with momentum and L2 weight decay, PyTorch semantics: g ← ∇ + wd·θ (parameters marked
/// `decays`, or all with `decayAll`), b ← μ·b + g (b = g on the first step), θ ← θ − lr·b.
public final class SGD: Optimizer {
    public var momentum: Float
    public var weightDecay: Float
    /// Apply weight decay to norms and biases too (PyTorch's default when given all parameters).
    public var decayAll: Bool
    public var state: [String: [Float]] = [:]
    public var steps = 0

    public init(momentum: Float = 0.9, weightDecay: Float = 1e-4, decayAll: Bool = false) {
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.decayAll = decayAll
    }

    public func step(_ parameters: [Parameter], learningRate: Float) {
        for p in parameters {
            let key = "momentum.\(p.name)"
            let decay = (p.decays || decayAll) ? weightDecay : 0
            // Taken out of the dictionary so the update below mutates it in place (no copy).
            var buffer = state.removeValue(forKey: key) ?? []
            // State of another length (never written by us) restarts, rather than being read past its end.
            let first = buffer.count != p.count
            if first { buffer = [Float](repeating: 0, count: p.count) }
            p.value.withUnsafeMutableBufferPointer { theta in
                p.gradient.withUnsafeMutableBufferPointer { grad in
                    buffer.withUnsafeMutableBufferPointer { b in
                        for i in 0..<theta.count {
                            let g = grad[i] + decay * theta[i]
                            let v = first ? g : momentum * b[i] + g
                            b[i] = v
                            theta[i] -= learningRate * v
                            grad[i] = 0
                        }
                    }
                }
            }
            state[key] = buffer
        }
        steps += 1
    }
}

/// AdamW (Loshchilov & Hutter): decoupled weight decay θ ← θ − lr·wd·θ on `decays` parameters,
/// then Adam with bias-corrected moments.
public final class AdamW: Optimizer {
    public var beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    public var state: [String: [Float]] = [:]
    public var steps = 0

    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.05) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter], learningRate: Float) {
        steps += 1
        let t = Float(steps)
        let c1 = 1 - pow(beta1, t), c2 = 1 - pow(beta2, t)
        for p in parameters {
            var m = state.removeValue(forKey: "adam_m.\(p.name)") ?? []
            var v = state.removeValue(forKey: "adam_v.\(p.name)") ?? []
            if m.count != p.count { m = [Float](repeating: 0, count: p.count) }
            if v.count != p.count { v = [Float](repeating: 0, count: p.count) }
            let decay = p.decays ? weightDecay : 0
            for i in 0..<p.count {
                let g = p.gradient[i]
                m[i] = beta1 * m[i] + (1 - beta1) * g
                v[i] = beta2 * v[i] + (1 - beta2) * g * g
                p.value[i] -= learningRate * decay * p.value[i]
                p.value[i] -= learningRate * (m[i] / c1) / ((v[i] / c2).squareRoot() + epsilon)
            }
            p.zeroGradient()
            state["adam_m.\(p.name)"] = m
            state["adam_v.\(p.name)"] = v
        }
    }
}

private func pow(_ x: Float, _ y: Float) -> Float { Glibc.powf(x, y) }
