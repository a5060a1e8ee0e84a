import Foundation
import StreamDecode
import Testing
import TestSupport

@Suite("Sources and protocol whitelists", .serialized, .timeLimit(.minutes(10)))
struct MediaSourceTests {
    @Test("locations are classified by scheme")
    func classification() throws {
        #expect(try MediaSource("-").kind == .pipe)
        #expect(try MediaSource("clip.mp4").kind == .file)
        #expect(try MediaSource("/abs/with:colon.mp4").kind == .file)
        #expect(try MediaSource("file:/x.mp4").kind == .file)
        #expect(try MediaSource("udp://127.0.0.1:5000").kind == .udp)
        #expect(try MediaSource("rtsp://cam/stream").kind == .rtsp)
        #expect(try MediaSource("https://host/live.m3u8").kind == .http)
        #expect(try MediaSource("srt://127.0.0.1:9000").kind == .srt)
        #expect(try MediaSource("rtmp://host/app").kind == .rtmp)
        #expect(throws: DecodeError.self) { try MediaSource("gopher://host/x") }
        #expect(try !MediaSource("clip.mp4").protocolWhitelist.contains("http"))
        #expect(try !MediaSource("http://h/x.m3u8").protocolWhitelist.contains("file"))
    }

    /// Serves `directory` over HTTP on 127.0.0.1 with Python's http.server.
    static func httpServer(_ directory: URL) throws -> (BackgroundProcess, Int) {
        let port = try freePort()
        let server = try BackgroundProcess("python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory.path])
        let deadline = monotonicSeconds() + 10
        while monotonicSeconds() < deadline {
            if (try? run("python3", ["-c", "import socket; socket.create_connection(('127.0.0.1', \(port)), 1)"]))?.status == 0 {
                return (server, port)
            }
            usleep(100_000)
        }
        throw TestFailure("http.server did not start on port \(port)")
    }

    /// An HLS rendition in `dir`: good.m3u8 plus its segments.
    static func makeHLS(in dir: URL) throws -> String {
        try ffmpeg([
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
            "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", "-hls_segment_filename", dir.appendingPathComponent("seg%d.ts").path,
            dir.appendingPathComponent("good.m3u8").path,
        ])
        return try String(contentsOf: dir.appendingPathComponent("good.m3u8"), encoding: .utf8)
    }

    static func frames(_ location: String) -> Int {
        var o = DecodeOptions()
        o.ioTimeout = 5
        return (try? decodeAll(location, options: o).frames.count) ?? 0
    }

    @Test("a local playlist reads local segments but may not reach the network")
    func localPlaylistStaysLocal() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let playlist = try Self.makeHLS(in: dir)
        let (server, port) = try Self.httpServer(dir)
        defer { server.kill() }
        #expect(Self.frames(dir.appendingPathComponent("good.m3u8").path) == 75)
        // Positive control: the same segments are reachable over HTTP from a network playlist.
        #expect(Self.frames("http://127.0.0.1:\(port)/good.m3u8") == 75)
        let remote = playlist.replacingOccurrences(of: "seg", with: "http://127.0.0.1:\(port)/seg")
        try remote.write(to: dir.appendingPathComponent("remote.m3u8"), atomically: true, encoding: .utf8)
        #expect(Self.frames(dir.appendingPathComponent("remote.m3u8").path) == 0)
    }

    @Test("a network playlist may not open local files")
    func networkPlaylistStaysRemote() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let playlist = try Self.makeHLS(in: dir)
        let (server, port) = try Self.httpServer(dir)
        defer { server.kill() }
        let local = playlist.replacingOccurrences(of: "seg", with: "file://\(dir.path)/seg")
        try local.write(to: dir.appendingPathComponent("local.m3u8"), atomically: true, encoding: .utf8)
        #expect(Self.frames("http://127.0.0.1:\(port)/local.m3u8") == 0)
    }
}
