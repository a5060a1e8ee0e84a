/// Raises an alarm when the embedding has collapsed, without labels: the std ratio
/// (std of the L2-normalised embeddings × √d, about 1 when they spread over the sphere and near 0
/// when they all point one way) or the effective rank has stayed below its threshold for
/// `steps` consecutive steps. It clears as soon as both are above again.
public struct CollapseDetector: Sendable, Equatable {
    public var minStdRatio: Float
    public var minEffectiveRank: Float
    /// Consecutive steps below a threshold before the alarm.
    public var steps: Int

    /// The step from which the signals have been below, if they are.
    public private(set) var belowSince: Int?
    public private(set) var alarm = false

    public init(minStdRatio: Float = 0.05, minEffectiveRank: Float = 1.5, steps: Int = 100) {
        self.minStdRatio = minStdRatio
        self.minEffectiveRank = minEffectiveRank
        self.steps = max(1, steps)
    }

    /// Feeds one step's signals (nan: not measured at this step; the last rank measured counts
    /// until the next). Returns true when the alarm has just been raised.
    public mutating func observe(step: Int, stdRatio: Float, effectiveRank: Float) -> Bool {
        let low = (stdRatio.isFinite && stdRatio < minStdRatio) || (effectiveRank.isFinite && effectiveRank < minEffectiveRank)
        guard low else {
            belowSince = nil
            alarm = false
            return false
        }
        let since = belowSince ?? step
        belowSince = since
        if !alarm && step - since + 1 >= steps {
            alarm = true
            return true
        }
        return false
    }
}
