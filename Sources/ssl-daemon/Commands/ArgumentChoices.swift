import ArgumentParser
import DaemonRuntime
import StreamDecode
import TemporalContrast

// The libraries' enums parse as command-line values by their raw values; ArgumentParser lists
// their cases in help and in errors. (Their modules do not depend on ArgumentParser, hence the
// conformances live here.)
extension FFmpegLogLevel: ExpressibleByArgument {}
extension VideoOptions.Scaling: ExpressibleByArgument {}
extension ExportedEncoder.Modality: ExpressibleByArgument {}
// The config's choice settings, for the flags that set them.
extension LogLevel: ExpressibleByArgument {}
extension VideoArchitecture: ExpressibleByArgument {}
extension LearnerConfig.Objective: ExpressibleByArgument {}
extension LearnerConfig.OptimizerKind: ExpressibleByArgument {}
extension ConvolutionEngine: ExpressibleByArgument {}

/// `bench train --preset`: the workloads it can time.
enum TrainPreset: String, CaseIterable, ExpressibleByArgument {
    /// `ReferenceWorkload`: the MoCo step the PyTorch script reproduces.
    case reference
    /// `ResNetWorkload`: the resnet-small encoder at 112 px, batch 32.
    case resnetSmall = "resnet-small"

    /// The learner settings, pairs per step and input side in pixels.
    func workload(seed: UInt64) -> (config: LearnerConfig, batch: Int, imageSize: Int) {
        switch self {
        case .reference: (ReferenceWorkload.config(seed: seed), ReferenceWorkload.batch, ReferenceWorkload.imageSize)
        case .resnetSmall: (ResNetWorkload.config(seed: seed), ResNetWorkload.batch, ResNetWorkload.imageSize)
        }
    }
}
