internal import CFFmpeg

/// Owns one AVPacket (av_packet_alloc / av_packet_free).
final class Packet {
    let pointer: UnsafeMutablePointer<AVPacket>

    init() {
        guard let p = av_packet_alloc() else { fatalError("av_packet_alloc: out of memory") }
        pointer = p
    }

    deinit {
        var p: UnsafeMutablePointer<AVPacket>? = pointer
        av_packet_free(&p)
    }

    /// av_packet_unref: drops the payload, keeps the packet for reuse.
    func unref() { av_packet_unref(pointer) }
}

/// Owns one AVFrame (av_frame_alloc / av_frame_free).
final class Frame {
    let pointer: UnsafeMutablePointer<AVFrame>

    init() {
        guard let f = av_frame_alloc() else { fatalError("av_frame_alloc: out of memory") }
        pointer = f
    }

    deinit {
        var f: UnsafeMutablePointer<AVFrame>? = pointer
        av_frame_free(&f)
    }

    /// av_frame_unref: drops the buffers, keeps the frame for reuse.
    func unref() { av_frame_unref(pointer) }
}

/// Owns one opened AVCodecContext (avcodec_alloc_context3 + avcodec_open2 / avcodec_free_context).
final class CodecContext {
    let pointer: UnsafeMutablePointer<AVCodecContext>

    /// Opens a decoder for `stream`. `threads > 1` turns on frame and slice threading.
    init(stream: UnsafeMutablePointer<AVStream>, codec: UnsafePointer<AVCodec>, threads: Int, input: String)
        throws(DecodeError)
    {
        guard let ctx = avcodec_alloc_context3(codec) else { fatalError("avcodec_alloc_context3: out of memory") }
        pointer = ctx
        // If a step below throws, deinit frees the context.
        try check(avcodec_parameters_to_context(ctx, stream.pointee.codecpar), "avcodec_parameters_to_context", input: input)
        ctx.pointee.pkt_timebase = stream.pointee.time_base
        ctx.pointee.thread_count = Int32(threads)
        ctx.pointee.thread_type = threads > 1 ? FF_THREAD_FRAME | FF_THREAD_SLICE : 0
        try check(avcodec_open2(ctx, codec, nil), "avcodec_open2", input: input)
    }

    deinit {
        var p: UnsafeMutablePointer<AVCodecContext>? = pointer
        avcodec_free_context(&p)
    }
}

/// Owns a dictionary of FFmpeg options (AVDictionary / av_dict_free).
final class OptionDictionary {
    var pointer: OpaquePointer?

    init(_ options: [String: String]) {
        for (key, value) in options.sorted(by: { $0.key < $1.key }) {
            av_dict_set(&pointer, key, value, 0)
        }
    }

    deinit { av_dict_free(&pointer) }

    /// Keys FFmpeg did not consume (it leaves unrecognised options in the dictionary).
    var remainingKeys: [String] {
        var keys: [String] = []
        var entry: UnsafeMutablePointer<AVDictionaryEntry>? = nil
        while let e = av_dict_get(pointer, "", entry, AV_DICT_IGNORE_SUFFIX) {
            keys.append(String(cString: e.pointee.key))
            entry = e
        }
        return keys
    }
}
