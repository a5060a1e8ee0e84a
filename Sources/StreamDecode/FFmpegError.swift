internal import CFFmpeg

/// The one error type of StreamDecode: what failed, on which input, in which FFmpeg call.
public struct DecodeError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// The input does not exist or cannot be read (missing path, a directory, permission).
        case notFound = "not_found"
        /// The input exists but is not media FFmpeg can demux (empty, garbage, truncated header).
        case invalidData = "invalid_data"
        /// The file ends before the content its container declares (a cut or partial download).
        /// Raised after every item that could be decoded was delivered.
        case truncated
        /// The container has neither a video nor an audio stream we can decode.
        case noStreams = "no_streams"
        /// No decoder is available for the stream's codec.
        case unsupportedCodec = "unsupported_codec"
        /// A blocking call exceeded its deadline (dead server, stalled stream).
        case timedOut = "timed_out"
        /// `MediaDecoder.interrupt()` was called from another thread.
        case interrupted
        /// The URL's scheme is not one of the supported source kinds, or the protocol was refused.
        case protocolNotAllowed = "protocol_not_allowed"
        /// Anything else FFmpeg reported (network errors, I/O errors, internal failures).
        case ffmpeg
        /// A configuration value the caller passed is out of range.
        case invalidOptions = "invalid_options"
    }

    public var kind: Kind
    /// The input as the caller named it (path or URL).
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

    public var description: String {
        code != 0
            ? "\(input): \(call) failed: \(message) (\(kind.rawValue), code \(code))"
            : "\(input): \(call): \(message) (\(kind.rawValue))"
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
    case cffmpeg_averror(ENOENT), cffmpeg_averror(EISDIR), cffmpeg_averror(EACCES), cffmpeg_averror(ENOTDIR),
        cffmpeg_averror(ELOOP):
        kind = .notFound
    case AVCode.invalidData, AVCode.eof:
        kind = .invalidData
    case cffmpeg_averror_decoder_not_found():
        kind = .unsupportedCodec
    case cffmpeg_averror_stream_not_found():
        kind = .noStreams
    default:
        kind = .ffmpeg
    }
    return DecodeError(kind: kind, input: input, call: call, code: code, message: message)
}

/// Throws the mapped `DecodeError` when `code` is negative; returns it otherwise.
@discardableResult
func check(_ code: Int32, _ call: String, input: String, interrupt: InterruptReason? = nil) throws(DecodeError) -> Int32 {
    if code < 0 { throw decodeError(code, call: call, input: input, interrupt: interrupt) }
    return code
}
