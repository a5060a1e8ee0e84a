internal import CFFmpeg
import Glibc

/// Owns an opened AVFormatContext (avformat_open_input + avformat_find_stream_info /
/// avformat_close_input), with its protocol whitelist and interrupt callback in place before any
/// byte is read.
final class FormatContext {
    let pointer: UnsafeMutablePointer<AVFormatContext>
    /// Custom I/O for stdin; released after the format context (deinit runs first).
    private let pipe: PipeReader?
    /// The state FFmpeg's interrupt callback points at. Closing can still call the callback (TLS
    /// close-notify, RTSP TEARDOWN), so it must outlive avformat_close_input: deinit runs first.
    private let interrupt: DecodeInterrupt

    init(source: MediaSource, options: DecodeOptions, interrupt: DecodeInterrupt) throws(DecodeError) {
        let input = source.location
        self.interrupt = interrupt
        if source.kind == .file { try Self.checkLocalPath(source) }
        guard let ctx = avformat_alloc_context() else { fatalError("avformat_alloc_context: out of memory") }
        ctx.pointee.interrupt_callback = interrupt.callback
        if source.kind == .pipe {
            let reader = PipeReader(fd: STDIN_FILENO, interrupt: interrupt)
            ctx.pointee.pb = reader.context
            ctx.pointee.flags |= AVFMT_FLAG_CUSTOM_IO
            pipe = reader
        } else {
            pipe = nil
        }

        var settings = options.formatOptions
        settings["protocol_whitelist"] = source.protocolWhitelist
        let dictionary = OptionDictionary(settings)
        var opened: UnsafeMutablePointer<AVFormatContext>? = ctx
        interrupt.arm(seconds: source.isLive ? options.ioTimeout : nil)
        // On failure avformat_open_input frees the context and sets `opened` to nil.
        let status = avformat_open_input(&opened, source.ffmpegURL, nil, &dictionary.pointer)
        if status < 0 || opened == nil {
            throw decodeError(status, call: "avformat_open_input", input: input, interrupt: interrupt.reason)
        }
        pointer = opened!

        let unknown = dictionary.remainingKeys
        if !unknown.isEmpty {
            throw DecodeError(
                kind: .invalidOptions, input: input, call: "avformat_open_input",
                message: "unknown format option(s): \(unknown.joined(separator: ", "))")
        }
        interrupt.arm(seconds: source.isLive ? options.ioTimeout : nil)
        try check(avformat_find_stream_info(pointer, nil), "avformat_find_stream_info", input: input, interrupt: interrupt.reason)
    }

    deinit {
        var p: UnsafeMutablePointer<AVFormatContext>? = pointer
        avformat_close_input(&p)
    }

    /// Clearer errors than FFmpeg gives for paths that are not regular readable files.
    private static func checkLocalPath(_ source: MediaSource) throws(DecodeError) {
        let path = source.location.hasPrefix("file:") ? String(source.location.dropFirst(5)) : source.location
        var st = stat()
        guard stat(path, &st) == 0 else {
            let code = errno
            throw DecodeError(
                kind: .notFound, input: source.location, call: "stat", code: cffmpeg_averror(code),
                message: String(cString: strerror(code)))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw DecodeError(
                kind: .notFound, input: source.location, call: "stat", code: cffmpeg_averror(EISDIR),
                message: "is a directory, not a media file")
        }
        // A FIFO or socket would block in read(2) with no deadline; stdin (`-`) is the way to stream.
        if (st.st_mode & S_IFMT) != S_IFREG {
            throw DecodeError(
                kind: .notFound, input: source.location, call: "stat",
                message: "not a regular file (a FIFO, socket or device); use - to read a stream from stdin")
        }
        if st.st_size == 0 && (st.st_mode & S_IFMT) == S_IFREG {
            throw DecodeError(kind: .invalidData, input: source.location, call: "stat", message: "file is empty (0 bytes)")
        }
    }
}
