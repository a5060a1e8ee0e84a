import DaemonRuntime
import Foundation
import Glibc
import TemporalContrast

/// Why the daemon cannot start or go on: each case names the input and the cause; the wrapped
/// errors of the lower layers are kept, not flattened into strings.
enum DaemonError: Error, CustomStringConvertible {
    /// A setting or flag outside its valid range, a config file that does not parse.
    case config(ConfigError)
    /// The state directory cannot be used (not writable, locked by another daemon, ...).
    case stateDirectory(StateDirectory.Failure)
    case ledger(Ledger.Failure)
    /// Intact checkpoints exist but none fits this model config.
    case noFittingCheckpoint(directory: String, stateDirectory: String, reasons: [String])

    var description: String {
        switch self {
        case .config(let e): "\(e)"
        case .stateDirectory(let e): "\(e)"
        case .ledger(let e): "\(e)"
        case .noFittingCheckpoint(let directory, let stateDirectory, let reasons):
            """
            no checkpoint in \(directory) fits this config (\(reasons.joined(separator: "; "))). \
            Run with the config they were trained with (`ssl-daemon inspect \(stateDirectory)` prints it), \
            or move the checkpoints away to start fresh
            """
        }
    }

    /// strerror(3) of `code`, for messages that name a failed call.
    static func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }
}
