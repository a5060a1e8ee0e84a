internal import CFFmpeg
import Glibc

/// Owns a custom AVIOContext that reads a file descriptor (stdin) with poll(), so a stalled or
/// closed pipe honours the same deadline and interrupt as network sources. FFmpeg's own `pipe:`
/// protocol blocks in read(2), where no interrupt callback can reach it.
final class PipeReader {
    let context: UnsafeMutablePointer<AVIOContext>
    private let fd: Int32
    private let interrupt: DecodeInterrupt
    private static let bufferSize: Int32 = 64 * 1024

    init(fd: Int32, interrupt: DecodeInterrupt) {
        self.fd = fd
        self.interrupt = interrupt
        guard let buffer = av_malloc(Int(Self.bufferSize))?.assumingMemoryBound(to: UInt8.self) else {
            fatalError("av_malloc: out of memory")
        }
        // The opaque pointer is set below, once self is fully initialised; it is unretained because
        // this object owns the AVIOContext and outlives every call FFmpeg makes through it.
        guard let ctx = avio_alloc_context(buffer, Self.bufferSize, 0, nil, { opaque, buf, size in
            guard let opaque, let buf else { return cffmpeg_averror(EINVAL) }
            return Unmanaged<PipeReader>.fromOpaque(opaque).takeUnretainedValue().read(into: buf, count: size)
        }, nil, nil) else {
            av_free(buffer)
            fatalError("avio_alloc_context: out of memory")
        }
        context = ctx
        ctx.pointee.opaque = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        // FFmpeg may have replaced the buffer; free whatever the context holds now.
        av_freep(&context.pointee.buffer)
        var ctx: UnsafeMutablePointer<AVIOContext>? = context
        avio_context_free(&ctx)
    }

    /// The read_packet callback: waits in 100 ms poll() slices so the interrupt is checked often.
    private func read(into buffer: UnsafeMutablePointer<UInt8>, count: Int32) -> Int32 {
        while true {
            if interrupt.shouldAbort() { return cffmpeg_averror_exit() }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 100)
            if ready < 0 {
                if errno == EINTR { continue }
                return cffmpeg_averror(errno)
            }
            if ready == 0 { continue }
            let n = Glibc.read(fd, buffer, Int(count))
            if n > 0 { return Int32(n) }
            if n == 0 { return cffmpeg_averror_eof() }
            if errno == EINTR || errno == EAGAIN { continue }
            return cffmpeg_averror(errno)
        }
    }
}
