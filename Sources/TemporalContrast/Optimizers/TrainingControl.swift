/// Linear warmup to `baseRate` over `warmupSteps`, then constant: the stream is open-ended, so no
/// schedule may depend on a total step count.
public struct WarmupConstantSchedule: Sendable, Equatable, Codable {
    public var baseRate: Float
    public var warmupSteps: Int

    public init(baseRate: Float, warmupSteps: Int = 0) {
        self.baseRate = baseRate
        self.warmupSteps = warmupSteps
    }

    /// Learning rate for update number `step` (0-based).
    public func rate(at step: Int) -> Float {
        warmupSteps > 0 && step < warmupSteps ? baseRate * Float(step + 1) / Float(warmupSteps) : baseRate
    }
}

/// Gradient hygiene applied between backward and the optimizer.
public enum GradientGuard {
    /// Global L2 norm of all gradients.
    public static func norm(_ parameters: [Parameter]) -> Float {
        var total: Double = 0
        for p in parameters {
            p.gradient.withUnsafeBufferPointer { total += Vector.sumOfSquares($0.baseAddress!, count: $0.count) }
        }
        return Float(total.squareRoot())
    }

    /// Scales gradients so their global norm is at most `maxNorm`; returns the norm before clipping.
    @discardableResult
    public static func clip(_ parameters: [Parameter], maxNorm: Float) -> Float {
        let n = norm(parameters)
        if n.isFinite && n > maxNorm && maxNorm > 0 {
            let s = maxNorm / n
            for p in parameters { p.gradient.withUnsafeMutableBufferPointer { Vector.scale($0.baseAddress!, by: s, count: $0.count) } }
        }
        return n
    }

    /// True when `loss` and every gradient are finite: an update may be applied.
    public static func isFinite(loss: Float, _ parameters: [Parameter]) -> Bool {
        guard loss.isFinite else { return false }
        return parameters.allSatisfy { p in p.gradient.withUnsafeBufferPointer { Vector.allFinite($0.baseAddress!, count: $0.count) } }
    }

    /// What is not finite: "loss", or the first parameter whose gradient is; nil when all are.
    public static func nonFinite(loss: Float, _ parameters: [Parameter]) -> String? {
        if !loss.isFinite { return "loss" }
        return parameters.first { p in !p.gradient.withUnsafeBufferPointer { Vector.allFinite($0.baseAddress!, count: $0.count) } }
            .map { "gradient of \($0.name)" }
    }

    /// Drops accumulated gradients (after a skipped update).
    public static func zero(_ parameters: [Parameter]) {
        for p in parameters { p.zeroGradient() }
    }
}
