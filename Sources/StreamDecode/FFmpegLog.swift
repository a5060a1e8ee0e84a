internal import CFFmpeg

/// How much FFmpeg itself prints to stderr (av_log_set_level). Our own errors carry FFmpeg's
/// messages, so the daemon keeps FFmpeg quiet unless asked.
public enum FFmpegLogLevel: String, Sendable, CaseIterable {
    case quiet, panic, fatal, error, warning, info, verbose, debug

    var avLevel: Int32 {
        switch self {
        case .quiet: AV_LOG_QUIET
        case .panic: AV_LOG_PANIC
        case .fatal: AV_LOG_FATAL
        case .error: AV_LOG_ERROR
        case .warning: AV_LOG_WARNING
        case .info: AV_LOG_INFO
        case .verbose: AV_LOG_VERBOSE
        case .debug: AV_LOG_DEBUG
        }
    }

    /// Sets FFmpeg's process-wide log level (av_log_set_level).
    public func apply() { av_log_set_level(avLevel) }
}

/// Versions of the FFmpeg libraries we are linked against, as "major.minor.micro".
public enum FFmpegVersions {
    public static var libraries: [String: String] {
        func v(_ n: UInt32) -> String { "\(n >> 16).\((n >> 8) & 0xff).\(n & 0xff)" }
        return [
            "libavformat": v(avformat_version()), "libavcodec": v(avcodec_version()),
            "libavutil": v(avutil_version()), "libswscale": v(swscale_version()),
            "libswresample": v(swresample_version()),
        ]
    }
}
