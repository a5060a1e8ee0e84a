import TemporalContrast

/// A setting with a fixed set of values: one enum, read by the TOML loader, printed by
/// `--print-config`, and (through `ExpressibleByArgument` in the executable) parsed by the CLI;
/// its cases are the valid values that errors and help list.
package protocol ConfigChoice: RawRepresentable, CaseIterable, Sendable where RawValue == String {}

extension ConfigChoice {
    package static var names: [String] { allCases.map(\.rawValue) }
}

extension LearnerConfig.Objective: ConfigChoice {}
extension LearnerConfig.OptimizerKind: ConfigChoice {}
extension ConvolutionEngine: ConfigChoice {}
extension ReplayPolicy: ConfigChoice {}

/// The video encoder (`model.video`): the backbones that take RGB frames.
package enum VideoArchitecture: String, ConfigChoice {
    case reference
    case resnetSmall = "resnet-small"

    package var backbone: BackboneArchitecture {
        switch self {
        case .reference: .reference
        case .resnetSmall: .resnetSmall
        }
    }
}

/// The audio encoder over log-mel (`model.audio`).
package enum AudioArchitecture: String, ConfigChoice {
    case audio

    package var backbone: BackboneArchitecture { .audio }
}

/// The least severe level logged (`log_level`); the same names as swift-log's levels.
package enum LogLevel: String, ConfigChoice {
    case trace, debug, info, notice, warning, error, critical
}

extension ConfigField {
    /// How a choice setting is read and written, by its raw value.
    package struct Choice: Sendable {
        package let values: [String]
        let get: @Sendable (DaemonConfig) -> String
        /// False when `raw` is not one of `values`.
        let set: @Sendable (inout DaemonConfig, String) -> Bool

        static func of<E: ConfigChoice>(_ path: WritableKeyPath<DaemonConfig, E> & Sendable) -> Choice {
            Choice(
                values: E.names,
                get: { $0[keyPath: path].rawValue },
                set: { config, raw in
                    guard let value = E(rawValue: raw) else { return false }
                    config[keyPath: path] = value
                    return true
                })
        }
    }
}
