import Dispatch
import Foundation
import StreamDecode
import Testing
import TestSupport

/// Live sources on 127.0.0.1: real `ffmpeg -re` servers, real sockets, real timeouts.
@Suite("Live streams", .serialized, .timeLimit(.minutes(10)))
struct LiveStreamTests {
    /// Arguments for an `ffmpeg -re` MPEG-TS server sending H.264+AAC to `url`.
    static func serverArguments(to url: String, seconds: Int = 60) -> [String] {
        [
            "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=\(seconds)",
            "-f", "lavfi", "-i", "sine=f=440:duration=\(seconds)",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
            "-c:a", "aac", "-f", "mpegts", url,
        ]
    }

    /// Opens `url` on a background thread (the open blocks until data flows) while `start` runs.
    static func open(_ url: String, options: DecodeOptions, interrupt: DecodeInterrupt = DecodeInterrupt(), after start: () throws -> Void) throws -> MediaDecoder {
        let box = OpenResult()
        let thread = Thread { box.set(Result { () throws(DecodeError) in try MediaDecoder(url, options: options, interrupt: interrupt) }) }
        thread.start()
        usleep(300_000)
        try start()
        guard let result = box.wait(seconds: 20) else { throw TestFailure("open of \(url) did not return") }
        return try result.get()
    }

    static func readFrames(_ decoder: MediaDecoder, count: Int) throws -> [VideoFrame] {
        var frames: [VideoFrame] = []
        while frames.count < count, let item = try decoder.next() {
            if case .video(let f) = item { frames.append(f) }
        }
        return frames
    }

    @Test("UDP: frames arrive; when the server is killed the blocked read times out with an error")
    func udpTimeout() throws {
        let port = try freePort(udp: true)
        var o = options(threads: 2)
        o.ioTimeout = 2
        var server: BackgroundProcess?
        let decoder = try Self.open("udp://127.0.0.1:\(port)", options: o) {
            server = try BackgroundProcess("ffmpeg", Self.serverArguments(to: "udp://127.0.0.1:\(port)?pkt_size=1316"))
        }
        let frames = try Self.readFrames(decoder, count: 25)
        #expect(frames.count == 25)
        #expect(frames.allSatisfy { $0.width == 85 && $0.height == 64 })
        server?.kill()
        let killedAt = monotonicSeconds()
        var failure: DecodeError?
        do { while try decoder.next() != nil {} } catch { failure = error }
        let error = failure
        let waited = monotonicSeconds() - killedAt
        #expect(error?.kind == .timedOut, "\(String(describing: error))")
        #expect(error?.input == "udp://127.0.0.1:\(port)")
        #expect(waited < o.ioTimeout + 2, "returned after \(waited) s")
    }

    @Test("TCP: frames arrive from a listening ffmpeg server; a killed server ends the read promptly")
    func tcpStream() throws {
        let port = try freePort()
        let server = try BackgroundProcess("ffmpeg", Self.serverArguments(to: "tcp://127.0.0.1:\(port)?listen=1"))
        var o = options()
        o.ioTimeout = 3
        // The server needs a moment to listen; retry refused connections for a few seconds.
        var decoder: MediaDecoder?
        let deadline = monotonicSeconds() + 10
        while decoder == nil && monotonicSeconds() < deadline {
            do { decoder = try MediaDecoder("tcp://127.0.0.1:\(port)", options: o) } catch { usleep(200_000) }
        }
        let d = try #require(decoder)
        #expect(try Self.readFrames(d, count: 20).count == 20)
        #expect(d.info.audio?.codec == "aac")
        server.kill()
        let killedAt = monotonicSeconds()
        do { while try d.next() != nil {} } catch {}
        #expect(monotonicSeconds() - killedAt < o.ioTimeout + 2)
    }

    @Test("a server that accepts but never sends: open gives up at the deadline")
    func deadServerOpen() throws {
        let server = try SilentTCPServer()
        var o = DecodeOptions()
        o.ioTimeout = 1
        let started = monotonicSeconds()
        #expect { try MediaDecoder("tcp://127.0.0.1:\(server.port)", options: o) } throws: { ($0 as? DecodeError)?.kind == .timedOut }
        #expect(monotonicSeconds() - started < 3)
    }

    @Test("interrupt() from another thread ends a blocked open at once")
    func interruptOpen() throws {
        let server = try SilentTCPServer()
        var o = DecodeOptions()
        o.ioTimeout = 60
        let interrupt = DecodeInterrupt()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { interrupt.interrupt() }
        let started = monotonicSeconds()
        #expect { try MediaDecoder("tcp://127.0.0.1:\(server.port)", options: o, interrupt: interrupt) } throws: {
            ($0 as? DecodeError)?.kind == .interrupted
        }
        #expect(monotonicSeconds() - started < 2)
    }

    @Test("interrupt() from another thread ends a blocked read at once")
    func interruptRead() throws {
        let port = try freePort(udp: true)
        var o = options()
        o.ioTimeout = 60
        var server: BackgroundProcess?
        let decoder = try Self.open("udp://127.0.0.1:\(port)", options: o) {
            server = try BackgroundProcess("ffmpeg", Self.serverArguments(to: "udp://127.0.0.1:\(port)?pkt_size=1316"))
        }
        #expect(try Self.readFrames(decoder, count: 5).count == 5)
        server?.kill()
        let handle = decoder.interruptHandle
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { handle.interrupt() }
        let started = monotonicSeconds()
        var failure: DecodeError?
        do { while try decoder.next() != nil {} } catch { failure = error }
        let error = failure
        #expect(error?.kind == .interrupted)
        #expect(monotonicSeconds() - started < 3)
    }
}

/// Hands a result from the opening thread to the test.
final class OpenResult: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<MediaDecoder, DecodeError>?
    func set(_ r: Result<MediaDecoder, DecodeError>) {
        result = r
        done.signal()
    }
    func wait(seconds: Double) -> Result<MediaDecoder, DecodeError>? {
        done.wait(timeout: .now() + seconds) == .success ? result : nil
    }
}
