import Foundation
import TemporalContrast

/// Gives OpenBLAS the kernel family the CPU can run when its own detection fell back to a slow
/// generic one (see `ComputeThreads.betterBLASCore`).
///
/// OpenBLAS reads `OPENBLAS_CORETYPE` once, while the library loads, before any Swift code runs;
/// so the choice is made by setting it and executing this same binary again (same pid, arguments
/// and environment otherwise), first thing in `main`. A value the user set is always respected:
/// setting `OPENBLAS_CORETYPE` (to any kernel, the detected one included) turns this off.
enum BLASKernelSelection {
    /// Carries what OpenBLAS detected into the re-executed process, for its start log.
    static let detectedVariable = "SSL_DAEMON_BLAS_DETECTED"

    /// Re-executes the process with a better `OPENBLAS_CORETYPE` when one applies; returns
    /// otherwise (also when exec fails, keeping OpenBLAS's own choice).
    static func reexecIfOpenBLASFellBack() {
        guard getenv("OPENBLAS_CORETYPE") == nil else { return }
        let detected = ComputeThreads.blasCore
        guard let better = ComputeThreads.betterBLASCore(detected: detected, cpuFlags: cpuFlags()) else { return }
        // The resolved path, not /proc/self/exe: the kernel names the process after the file
        // exec'd, and `ps`, `top` and journald should keep showing ssl-daemon.
        guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        setenv(detectedVariable, detected, 1)
        execv(path, CommandLine.unsafeArgv)
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(detectedVariable)
    }

    /// "Kernel (chosen over OpenBLAS's Prescott)" or the kernel alone: for logs and benchmarks.
    static var description: String {
        let core = ComputeThreads.blasCore
        guard let detected = getenv(detectedVariable).map({ String(cString: $0) }), detected != core else { return core }
        return "\(core) (chosen by ssl-daemon over OpenBLAS's detected \(detected))"
    }

    /// The CPU feature flags of the first processor in /proc/cpuinfo (empty if unreadable).
    static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":")
        else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }
}
