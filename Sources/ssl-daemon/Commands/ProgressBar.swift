import Foundation
import Glibc
import Synchronization

/// A one-line progress bar with rate and ETA on stderr, redrawn at most 10 times a second;
/// nothing at all when stderr is not a terminal (logs and pipes stay clean).
struct ProgressBar {
    /// May grow (a batch job learns of files as the watcher finds them).
    var total: Int?
    private let unit: String
    private let label: String
    private let enabled: Bool
    private let started = Date()
    private var lastDraw = Date.distantPast
    private(set) var done = 0
    /// A bar is on stderr's current line: whoever writes a line there clears it first.
    static let lineInUse = Atomic<Bool>(false)

    /// - Parameter total: the count that means done, or nil when unknown (no bar, no ETA).
    init(_ label: String, total: Int?, unit: String, enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled
    }

    mutating func advance(by n: Int = 1, to value: Int? = nil) {
        done = value ?? done + n
        guard enabled else { return }
        let now = Date()
        if now.timeIntervalSince(lastDraw) >= 0.1 || done == total {
            lastDraw = now
            Self.lineInUse.store(true, ordering: .relaxed)
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line(now: now)).utf8))
        }
    }

    /// Ends the bar's line (when one was drawn).
    func finish() {
        guard enabled, lastDraw != .distantPast else { return }
        Self.lineInUse.store(false, ordering: .relaxed)
        FileHandle.standardError.write(Data("\n".utf8))
    }

    /// Clears the bar before something else is written to the terminal; the next `advance`
    /// draws it again.
    mutating func clear() {
        guard enabled, Self.lineInUse.load(ordering: .relaxed) else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
        lastDraw = .distantPast
    }

    func line(now: Date) -> String {
        let seconds = max(now.timeIntervalSince(started), 1e-3)
        let rate = Double(done) / seconds
        var text = "\(label) "
        if let total, total > 0 {
            let fraction = min(1, Double(done) / Double(total))
            let width = 24, filled = Int(fraction * Double(width))
            text += "[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] \(done)/\(total)"
            let eta = rate > 0 ? Double(total - done) / rate : .infinity
            text += String(format: " %.1f %@/s", rate, unit) + (eta.isFinite ? " ETA \(Self.clock(eta))" : "")
        } else {
            text += "\(done) \(unit)" + String(format: " %.1f/s", rate)
        }
        return text
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
