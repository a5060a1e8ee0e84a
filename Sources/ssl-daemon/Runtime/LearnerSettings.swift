import DaemonRuntime
import TemporalContrast

extension DaemonConfig {
    /// The learner's settings from the daemon's: architecture, heads, objective, optimizer, seed.
    var learnerConfig: LearnerConfig {
        var lc = LearnerConfig()
        lc.video = videoArchitecture.backbone
        lc.hidden = projectionHidden
        lc.embedding = embedding
        lc.objective = objective
        lc.temperature = Float(temperature)
        lc.queue = queue
        lc.keyMomentum = Float(keyMomentum)
        // A short window: masking everything within `far` would leave short clips with no negatives.
        lc.maskWindow = maskWindow
        lc.audioWeight = Float(audioWeight)
        lc.optimizer = optimizer
        lc.learningRate = Float(learningRate)
        lc.momentum = Float(sgdMomentum)
        lc.weightDecay = Float(weightDecay)
        lc.warmupSteps = warmupSteps
        lc.maxGradientNorm = Float(maxGradientNorm)
        lc.seed = UInt64(seed)
        lc.methodSettings = methodSettings
        return lc
    }
}
