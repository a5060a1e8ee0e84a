import Foundation
import Synchronization
import DaemonRuntime
import Logging

/// One line per event on stderr: `LEVEL label: message key=value ...`. Under journald
/// (`$JOURNAL_STREAM` set) each line starts with its syslog priority (`<3>` … `<7>`), so
/// `journalctl -p` filters work without libsystemd.
struct DaemonLogHandler: LogHandler {
    let label: String
    let journald: Bool
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String, journald: Bool = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil) {
        self.label = label
        self.journald = journald
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.keys.sorted().map { "\($0)=\(merged[$0]!)" }.joined(separator: " ")
        let priority: Int
        switch event.level {
        case .trace, .debug: priority = 7
        case .info: priority = 6
        case .notice: priority = 5
        case .warning: priority = 4
        case .error: priority = 3
        case .critical: priority = 2
        }
        let line = (journald ? "<\(priority)>" : "") + "\(event.level.rawValue.uppercased()) \(label): \(event.message)" + (fields.isEmpty ? "" : " " + fields) + "\n"
        // A progress bar on the terminal is cleared first; it redraws itself.
        FileHandle.standardError.write(Data(((ProgressBar.lineInUse.load(ordering: .relaxed) ? "\r\u{1B}[2K" : "") + line).utf8))
    }
}

extension LogLevel {
    /// The swift-log level of the same name.
    var level: Logger.Level {
        switch self {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }
}
