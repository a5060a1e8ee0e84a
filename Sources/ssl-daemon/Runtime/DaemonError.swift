import DaemonRuntime
import Foundation
import Glibc
import StreamDecode
import TemporalContrast

/// The executable's one error type: each case names the input and the cause, and keeps the
/// lower layer's error (a `ConfigError`, a `DecodeError`, a checkpoint's format error) as it is
/// rather than flattening it into a string; `description` is the message a user reads.
enum DaemonError: Error, CustomStringConvertible {
    /// A setting or flag outside its valid range, or a config file that does not parse.
    case config(ConfigError)
    /// No `--watch` or `--stream`, and no bundled samples to fall back on.
    case noSources
    /// A `--watch` directory a batch job (`--once`) cannot read.
    case watchDirectory(String, DirectoryWalker.RootState)
    /// The state directory cannot be used (not writable, locked by another daemon, ...).
    case stateDirectory(StateDirectory.Failure)
    case ledger(Ledger.Failure)
    /// Intact checkpoints exist but none fits this model config.
    case noFittingCheckpoint(directory: String, stateDirectory: String, reasons: [String])
    /// Nothing that looks like a checkpoint at the path given.
    case noCheckpoint(String)
    /// Checkpoints exist at `path`, but none loads; each one's reason.
    case noUsableCheckpoint(String, reasons: [String])
    /// One checkpoint file cannot be used for export or embedding.
    case checkpoint(URL, CheckpointProblem)
    /// Decoding a media file failed (the file, the FFmpeg call, its code and message).
    case decode(DecodeError)
    /// A media file decodes but has nothing the command needs (no audio, too short).
    case media(String, String)
    /// A POSIX call on an output path failed, with its errno.
    case output(path: String, call: String, errno: Int32)
    /// An output path that is not a writable directory.
    case outputDirectory(String, String)
    /// The HTTP endpoint could not listen (the address as configured, the cause).
    case endpoint(String, String)
    /// A daemon's endpoint could not be read (`ssl-daemon status`).
    case unreachable(String, String)

    enum CheckpointProblem {
        case unreadable(any Error)
        case noConfig
        case config(ConfigError)
        case encoder(any Error)
        case missingEncoder(ExportedEncoder.Modality)
    }

    /// The failed call `call` on `path`, with the current errno.
    static func posix(_ call: String, path: String) -> DaemonError { .output(path: path, call: call, errno: errno) }

    var description: String {
        switch self {
        case .config(let e): "\(e)"
        case .noSources:
            "no sources: give --watch DIR or --stream URL (or run from the source tree, where samples/clips is the default)"
        case .watchDirectory(let path, let state):
            switch state {
            case .missing: "--watch \(path): does not exist"
            case .notDirectory: "--watch \(path): is not a directory"
            case .unreadable(let why): "--watch \(path): cannot be read: \(why)"
            case .directory: "--watch \(path): is a directory"
            }
        case .stateDirectory(let e): "\(e)"
        case .ledger(let e): "\(e)"
        case .noFittingCheckpoint(let directory, let stateDirectory, let reasons):
            """
            no checkpoint in \(directory) fits this config (\(reasons.joined(separator: "; "))). \
            Run with the config they were trained with (`ssl-daemon inspect \(stateDirectory)` prints it), \
            or move the checkpoints away to start fresh
            """
        case .noCheckpoint(let path): "no checkpoint at \(path)"
        case .noUsableCheckpoint(let path, let reasons): "no usable checkpoint at \(path): \(reasons.joined(separator: "; "))"
        case .checkpoint(let url, let problem):
            switch problem {
            case .unreadable(let e): "\(e)"
            case .noConfig: "checkpoint \(url.path): no config in its metadata (not written by ssl-daemon run)"
            case .config(let e): "\(e)"
            case .encoder(let e): "checkpoint \(url.path): \(e)"
            case .missingEncoder(let modality): "checkpoint \(url.path) has no \(modality.rawValue) encoder"
            }
        case .decode(let e): "\(e)"
        case .media(let path, let problem): "\(path): \(problem)"
        case .output(let path, let call, let code): "\(path): \(call) failed: \(Self.errnoText(code))"
        case .outputDirectory(let path, let problem): "output \(path): \(problem)"
        case .endpoint(let address, let problem): "http.listen \(address): \(problem)"
        case .unreachable(let url, let problem): "\(url): \(problem)"
        }
    }

    /// strerror(3) of `code`, for messages that name a failed call.
    static func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }
}
