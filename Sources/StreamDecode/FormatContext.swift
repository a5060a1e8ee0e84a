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

    /// HLS demuxer options for local files, so a local playlist ends like a file instead of
    /// polling like a live stream (libavformat/hls.c):
    ///
    /// - `m3u8_hold_counters=2`: a playlist without `#EXT-X-ENDLIST` (a live or event playlist
    ///   whose writer stopped, or one that lists itself as a segment) is reloaded while segments
    ///   remain; once they run out, it ends after two reloads bring nothing new, about 1.5 target
    ///   durations, instead of hls.c's default 1000. (1 would end before the first segment: hls.c
    ///   counts the opening of segment 0 as a hold.) A local playlist that is still being written
    ///   keeps being read while its writer adds segments at least that often.
    /// - `live_start_index=0`: such a playlist is read from its first listed segment, as a
    ///   recording, rather than three segments from its end as a live edge.
    ///
    /// Every other demuxer leaves these keys unconsumed; they are set only when the caller's
    /// `formatOptions` does not name them, and only those we set are exempt from the
    /// unknown-option check.
    static let localHLSOptions: [String: String] = ["m3u8_hold_counters": "2", "live_start_index": "0"]

    init(source: MediaSource, options: DecodeOptions, interrupt: DecodeInterrupt) throws(DecodeError) {
        let input = source.location
        self.interrupt = interrupt
        var settings = options.formatOptions
        var implied: Set<String> = []
        if source.kind == .file {
            let path = source.localPath
            try Self.checkLocalPath(path, input: input)
            try LocalPlaylist.screen(path: path, input: input)
            for (key, value) in Self.localHLSOptions where settings[key] == nil {
                settings[key] = value
                implied.insert(key)
            }
        }
        settings["protocol_whitelist"] = source.protocolWhitelist

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

        let dictionary = OptionDictionary(settings)
        var opened: UnsafeMutablePointer<AVFormatContext>? = ctx
        let timeout = options.callTimeout(for: source)
        interrupt.arm(seconds: timeout)
        // On failure avformat_open_input frees the context and sets `opened` to nil.
        let status = avformat_open_input(&opened, source.ffmpegURL, nil, &dictionary.pointer)
        if status < 0 || opened == nil {
            throw decodeError(status, call: "avformat_open_input", input: input, interrupt: interrupt.reason)
        }
        pointer = opened!

        let unknown = dictionary.remainingKeys.filter { !implied.contains($0) }
        if !unknown.isEmpty {
            throw DecodeError(
                kind: .invalidOptions, input: input, call: "avformat_open_input",
                message: "unknown format option(s): \(unknown.joined(separator: ", "))")
        }
        interrupt.arm(seconds: timeout)
        try check(avformat_find_stream_info(pointer, nil), "avformat_find_stream_info", input: input, interrupt: interrupt.reason)
    }

    deinit {
        var p: UnsafeMutablePointer<AVFormatContext>? = pointer
        avformat_close_input(&p)
    }

    /// Clearer errors than FFmpeg gives for paths that are not regular readable files (stat(2)).
    /// A failing stat reports its own errno's kind: ENOENT is `.notFound`, EACCES `.permissionDenied`,
    /// EIO `.io`, and so on (`errorKind(errno:)`).
    private static func checkLocalPath(_ path: String, input: String) throws(DecodeError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let code = errno
            throw DecodeError(
                kind: errorKind(errno: code) ?? .io, input: input, call: "stat", code: cffmpeg_averror(code),
                message: String(cString: strerror(code)))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw DecodeError(
                kind: .notFound, input: input, call: "stat", code: cffmpeg_averror(EISDIR),
                message: "is a directory, not a media file")
        }
        // A FIFO or socket would block in read(2) with no deadline; stdin (`-`) is the way to stream.
        if (st.st_mode & S_IFMT) != S_IFREG {
            throw DecodeError(
                kind: .notFound, input: input, call: "stat",
                message: "not a regular file (a FIFO, socket or device); use - to read a stream from stdin")
        }
        if st.st_size == 0 {
            throw DecodeError(kind: .invalidData, input: input, call: "stat", message: "file is empty (0 bytes)")
        }
    }
}
