internal import CFFmpeg
import Glibc

/// The one error type of StreamDecode: what failed, on which input, in which FFmpeg call.
///
/// Print it with `description` (or string interpolation), never by formatting `input` yourself:
/// `description` shows the input through `MediaSource.redacted(_:)`, so passwords and tokens in
/// URLs stay out of logs, status pages and probe reports.
public struct DecodeError: Error, Sendable, CustomStringConvertible, CustomReflectable, Equatable {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// The input does not exist as a readable media file: missing path, a directory, a FIFO or
        /// device, a dangling or looping symlink.
        case notFound = "not_found"
        /// The operating system refused access (EACCES, EPERM): the file exists, but this process
        /// may not read it or search a directory above it.
        case permissionDenied = "permission_denied"
        /// The operating system failed to deliver the bytes: a device or network I/O error (EIO,
        /// ENXIO, ESTALE, a reset or refused connection), or the process ran out of file descriptors
        /// or memory (EMFILE, ENFILE, ENOMEM).
        case io = "io_error"
        /// The input exists but is not media FFmpeg can demux (empty, garbage, truncated header).
        case invalidData = "invalid_data"
        /// The file ends before the content its container declares (a cut or partial download).
        /// Raised after every item that could be decoded was delivered.
        case truncated
        /// The container has neither a video nor an audio stream we can decode.
        case noStreams = "no_streams"
        /// No decoder is available for the stream's codec.
        case unsupportedCodec = "unsupported_codec"
        /// A blocking call exceeded its deadline (dead server, stalled stream, hung file system).
        case timedOut = "timed_out"
        /// `MediaDecoder.interrupt()` was called from another thread.
        case interrupted
        /// The server refused the credentials, or the request without them (HTTP, HLS or RTSP 401
        /// or 403, an SRT passphrase rejected): only a change of user, password, passphrase or
        /// header fixes it.
        case unauthorized
        /// The URL's scheme is not one of the supported source kinds, or the protocol was refused.
        case protocolNotAllowed = "protocol_not_allowed"
        /// Anything else FFmpeg reported (internal failures, protocol-level errors such as HTTP
        /// status codes).
        case ffmpeg
        /// A configuration value the caller passed is out of range.
        case invalidOptions = "invalid_options"
    }

    public var kind: Kind
    /// The input exactly as the caller named it (path or URL), for programmatic use such as
    /// matching an error to its source. It may hold credentials: to print it, use `description`
    /// or `MediaSource.redacted(input)`.
    public var input: String
    /// The FFmpeg function that failed, e.g. `avformat_open_input`.
    public var call: String
    /// FFmpeg's error code (negative AVERROR), or 0 when the error is ours.
    public var code: Int32
    /// FFmpeg's message for `code`, or our own explanation.
    public var message: String

    public init(kind: Kind, input: String, call: String, code: Int32 = 0, message: String) {
        self.kind = kind
        self.input = input
        self.call = call
        self.code = code
        self.message = message
    }

    /// True when the same input, unchanged, may succeed if tried again later, so a caller should
    /// retry with a backoff rather than give up on it.
    ///
    /// Transient: `permissionDenied` (someone may fix the mode or the mount), `io` (a flaky disk or
    /// network, descriptors or memory freed), `timedOut` (a hung mount or stalled server) and
    /// `interrupted` (the caller stopped us; the input is not at fault). Not transient: content
    /// failures (`invalidData`, `truncated`, `noStreams`, `unsupportedCodec`), which only a
    /// different file fixes; `notFound`, which only a new file fixes; `unauthorized`, which only
    /// new credentials fix; `invalidOptions` and
    /// `protocolNotAllowed`, which only the caller's configuration fixes; and unclassified `ffmpeg`
    /// failures, which are deterministic as far as we can tell and would otherwise be retried
    /// forever.
    public var isTransient: Bool {
        switch kind {
        case .permissionDenied, .io, .timedOut, .interrupted: true
        case .notFound, .invalidData, .truncated, .noStreams, .unsupportedCodec, .unauthorized, .protocolNotAllowed,
            .ffmpeg, .invalidOptions:
            false
        }
    }

    /// The error for people: the input redacted by `MediaSource.redacted(_:)`, the call, FFmpeg's
    /// message, the kind and the code.
    public var description: String {
        let shown = MediaSource.redacted(input)
        return code != 0
            ? "\(shown): \(call) failed: \(message) (\(kind.rawValue), code \(code))"
            : "\(shown): \(call): \(message) (\(kind.rawValue))"
    }

    /// What `dump`, debuggers and reflection-based printers show: the fields, with `input`
    /// redacted like `description`.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "kind": kind, "input": MediaSource.redacted(input), "call": call, "code": code, "message": message,
            ], displayStyle: .struct)
    }
}

/// FFmpeg's text for an AVERROR code (av_strerror).
func ffmpegErrorString(_ code: Int32) -> String {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buf in
        // The buffer does not escape: av_make_error_string writes into it and we copy it out.
        _ = cffmpeg_err2str(code, buf.baseAddress!, buf.count)
        return String(cString: buf.baseAddress!)
    }
}

enum AVCode {
    static let eof = cffmpeg_averror_eof()
    static let again = cffmpeg_averror_eagain()
    static let exit = cffmpeg_averror_exit()
    static let invalidData = cffmpeg_averror_invaliddata()
    static let timedOut = cffmpeg_averror_etimedout()
    static let noPTS = cffmpeg_nopts_value()
    static let httpUnauthorized = cffmpeg_averror_http_unauthorized()
    static let httpForbidden = cffmpeg_averror_http_forbidden()
    static let httpNotFound = cffmpeg_averror_http_not_found()
}

/// The single mapping from an errno value to a `DecodeError.Kind`, shared by FFmpeg's
/// AVERROR(errno) codes (`decodeError`) and our own system calls (`stat` in `FormatContext`), so a
/// permission problem reads the same whichever layer met it. Nil for errno values that name no
/// kind of their own (EINVAL, EPROTO, ...): the caller picks its fallback.
func errorKind(errno value: Int32) -> DecodeError.Kind? {
    switch value {
    // The path does not lead to a readable media file, and will not until the file system changes.
    case ENOENT, ENOTDIR, EISDIR, ELOOP, ENAMETOOLONG:
        return .notFound
    case EACCES, EPERM:
        return .permissionDenied
    case ETIMEDOUT:
        return .timedOut
    // The device, the file server or the network failed, or the process ran out of descriptors,
    // memory or buffers: the same bytes may well read fine later.
    case EIO, ENXIO, ENODEV, ESTALE, EREMOTEIO, ENOLINK, ECOMM, EMFILE, ENFILE, ENOMEM, ENOBUFS, EAGAIN, EINTR,
        EBUSY, ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE, ENOTCONN, ESHUTDOWN, ENETDOWN, ENETUNREACH,
        ENETRESET, EHOSTDOWN, EHOSTUNREACH:
        return .io
    default:
        return nil
    }
}

/// The single mapping from an FFmpeg return code to a `DecodeError`.
///
/// `interrupt` says why an interrupt callback fired, if it did: FFmpeg reports both a deadline and a
/// close as AVERROR_EXIT, and only the caller knows which it was.
func decodeError(
    _ code: Int32, call: String, input: String, interrupt: InterruptReason? = nil
) -> DecodeError {
    let message = ffmpegErrorString(code)
    let kind: DecodeError.Kind
    switch code {
    case AVCode.exit where interrupt == .deadline, AVCode.timedOut:
        kind = .timedOut
    case AVCode.exit:
        kind = interrupt == .closed ? .interrupted : .ffmpeg
    case AVCode.invalidData, AVCode.eof:
        kind = .invalidData
    case cffmpeg_averror_decoder_not_found():
        kind = .unsupportedCodec
    case cffmpeg_averror_stream_not_found():
        kind = .noStreams
    case AVCode.httpUnauthorized, AVCode.httpForbidden:
        kind = .unauthorized
    case AVCode.httpNotFound:
        kind = .notFound
    default:
        // AVERROR(e) is -e on POSIX systems; FFmpeg's own codes (FFERRTAG) are far below -4095.
        kind = (code < 0 && code > -4096 ? errorKind(errno: -code) : nil) ?? .ffmpeg
    }
    return DecodeError(kind: kind, input: input, call: call, code: code, message: message)
}

/// Throws the mapped `DecodeError` when `code` is negative; returns it otherwise.
@discardableResult
func check(_ code: Int32, _ call: String, input: String, interrupt: InterruptReason? = nil) throws(DecodeError) -> Int32 {
    if code < 0 { throw decodeError(code, call: call, input: input, interrupt: interrupt) }
    return code
}
