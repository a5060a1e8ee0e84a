import Foundation
import StreamDecode
import Synchronization
import Testing
import TestSupport

/// Local HLS playlists end like files: live and self-referencing playlists written by the ffmpeg
/// CLI or by hand, read by real FFmpeg. Every decode runs under `decodeWithin`, so a regression
/// fails the test instead of hanging the suite.
@Suite("Local playlists end", .serialized)
struct LocalPlaylistTests {
    /// Segments of `seconds` 1-second H.264 segments (25 frames each) in `dir`, as a VOD playlist
    /// `name`; returns the playlist text.
    @discardableResult
    static func makeSegments(in dir: URL, seconds: Int, name: String = "vod.m3u8", prefix: String = "seg") throws -> String {
        try ffmpeg([
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=\(seconds)", "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "25", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
            "-hls_segment_filename", dir.appendingPathComponent("\(prefix)%d.ts").path, dir.appendingPathComponent(name).path,
        ])
        return try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
    }

    static func write(_ text: String, _ name: String, in dir: URL) throws -> String {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// The playlist without the lines that make it a finished recording.
    static func live(_ vod: String) -> String {
        vod.split(separator: "\n").filter { !$0.hasPrefix("#EXT-X-ENDLIST") && !$0.hasPrefix("#EXT-X-PLAYLIST-TYPE") }
            .joined(separator: "\n") + "\n"
    }

    @Test("a live playlist left by a stopped ffmpeg (list size 3, delete_segments, no ENDLIST) ends after its segments")
    func stoppedLiveWriter() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        // What a live writer leaves when it stops without writing ENDLIST: a sliding window of the
        // last three segments, the older ones deleted.
        try ffmpeg([
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=6", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
            "-f", "hls", "-hls_time", "1", "-hls_list_size", "3", "-hls_flags", "delete_segments+omit_endlist",
            "-hls_segment_filename", dir.appendingPathComponent("live%d.ts").path, dir.appendingPathComponent("live.m3u8").path,
        ])
        let path = dir.appendingPathComponent("live.m3u8").path
        let playlist = try String(contentsOfFile: path, encoding: .utf8)
        try #require(!playlist.contains("#EXT-X-ENDLIST") && playlist.contains("#EXT-X-MEDIA-SEQUENCE:3"), "\(playlist)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("live0.ts").path))

        let decoded = try #require(try decodeWithin(60, path, options: options(audio: false)), "the decoder did not return")
        #expect(decoded.error == nil, "\(String(describing: decoded.error))")
        #expect(decoded.frames.count == 75, "three listed 1 s segments at 25 fps")
        #expect(decoded.info?.format == "hls")
    }

    @Test("a hand-written playlist of five segments without ENDLIST decodes all five, then ends")
    func handWrittenLive() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let path = try Self.write(Self.live(try Self.makeSegments(in: dir, seconds: 5)), "live.m3u8", in: dir)
        let decoded = try #require(try decodeWithin(60, path, options: options(audio: false)), "the decoder did not return")
        #expect(decoded.error == nil, "\(String(describing: decoded.error))")
        // From the first listed segment, not three from the live edge.
        #expect(decoded.frames.count == 125)
        #expect(decoded.boundaries.isEmpty)
    }

    @Test("a caller's own HLS option still wins over the local defaults")
    func callerOptionWins() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let path = try Self.write(Self.live(try Self.makeSegments(in: dir, seconds: 5)), "live.m3u8", in: dir)
        var o = options(audio: false)
        o.formatOptions = ["live_start_index": "-1"]
        let decoded = try #require(try decodeWithin(60, path, options: o), "the decoder did not return")
        #expect(decoded.error == nil, "\(String(describing: decoded.error))")
        #expect(decoded.frames.count == 25, "only the last segment")
    }

    @Test("HLS options we add do not trip the unknown-option check on other files; the caller's do")
    func impliedOptionsOnlyForHLS() throws {
        let decoded = try #require(try decodeWithin(60, sampleClip("h264_aac.mp4")))
        #expect(decoded.error == nil)
        #expect(decoded.frames.count > 0)
        var o = DecodeOptions()
        o.formatOptions = ["m3u8_hold_counters": "5"]
        #expect { try MediaDecoder(sampleClip("h264_aac.mp4"), options: o) } throws: {
            ($0 as? DecodeError).map { $0.kind == .invalidOptions && $0.message.contains("m3u8_hold_counters") } ?? false
        }
    }

    @Test("a media playlist that lists itself as a segment ends", arguments: ["self.m3u8", "loop.ts"])
    func listsItselfAsSegment(name: String) throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        try Self.makeSegments(in: dir, seconds: 2)
        // Named .m3u8, Debian's FFmpeg refuses the mixed segment extensions at once; named .ts,
        // the extension check passes and hls.c used to reload it without end.
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nseg0.ts\n#EXTINF:1.0,\n\(name)\n#EXTINF:1.0,\nseg1.ts\n"
        let path = try Self.write(text, name, in: dir)
        let started = monotonicSeconds()
        let outcome = try #require(decodeWithinResult(60, path, options: options(audio: false)), "the decoder did not return")
        switch outcome {
        case .success(let decoded):
            // Both real segments are read; the playlist's own bytes are junk to the segment demuxer.
            #expect(decoded.frames.count == 50, "\(String(describing: decoded.error))")
            if let error = decoded.error { #expect(error.input == path) }
        case .failure(let error):
            #expect(error.kind == .invalidData, "\(error)")
            #expect(error.input == path)
        }
        #expect(monotonicSeconds() - started < 60)
    }

    @Test("a master playlist that names itself, or a cycle of two, is refused before FFmpeg expands it")
    func variantCycles() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let selfMaster = try Self.write("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nmaster.m3u8\n", "master.m3u8", in: dir)
        _ = try Self.write("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nb.m3u8\n", "a.m3u8", in: dir)
        _ = try Self.write(
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"./sub/../a.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nnone.m3u8\n",
            "b.m3u8", in: dir)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        for path in [selfMaster, dir.appendingPathComponent("a.m3u8").path] {
            let outcome = try #require(decodeWithinResult(30, path), "the open did not return")
            guard case .failure(let error) = outcome else {
                Issue.record("\(path) opened")
                continue
            }
            #expect(error.kind == .invalidData, "\(error)")
            #expect(error.message.contains("cycle"), "\(error)")
            #expect(!error.isTransient)
        }
    }

    @Test("a legitimate local master playlist still reads its media playlist")
    func nestedMaster() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        try Self.makeSegments(in: dir, seconds: 3)
        let master = try Self.write("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\nvod.m3u8\n", "master.m3u8", in: dir)
        let decoded = try #require(try decodeWithin(60, master, options: options(audio: false)))
        #expect(decoded.error == nil, "\(String(describing: decoded.error))")
        #expect(decoded.frames.count == 75)
    }

    @Test("fileTimeout bounds a blocking call on a local file: a live playlist with 20 s segments waits no longer")
    func fileTimeoutBoundsLocalCalls() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        try Self.makeSegments(in: dir, seconds: 3)
        // Declared 20 s segments: hls.c waits a segment duration before reloading, longer than
        // the deadline below.
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:20\n#EXT-X-MEDIA-SEQUENCE:0\n"
            + (0..<3).map { "#EXTINF:20.0,\nseg\($0).ts\n" }.joined()
        let path = try Self.write(text, "slow.m3u8", in: dir)
        var o = options(audio: false)
        o.fileTimeout = 2
        let started = monotonicSeconds()
        let decoded = try #require(try decodeWithin(60, path, options: o), "the decoder did not return")
        let elapsed = monotonicSeconds() - started
        #expect(decoded.frames.count == 75, "everything listed is delivered before the error")
        #expect(decoded.error?.kind == .timedOut, "\(String(describing: decoded.error))")
        #expect(decoded.error?.isTransient == true)
        #expect(elapsed < 30, "returned after \(elapsed) s")
    }

    @Test("fileTimeout must be finite and in (0, 86400] seconds", arguments: [0, -1, .nan, .infinity, 86_401])
    func fileTimeoutValidated(value: Double) {
        var o = DecodeOptions()
        o.fileTimeout = value
        #expect { try MediaDecoder(sampleClip("h264_aac.mp4"), options: o) } throws: {
            ($0 as? DecodeError).map { $0.kind == .invalidOptions && $0.message.contains("fileTimeout") } ?? false
        }
    }
}

/// Decodes `location` on its own thread, keeping what came out before any error; nil when the
/// open or a read did not return within `seconds` (the decoder is then interrupted, so the thread
/// ends instead of leaking). A failed open is a thrown error, as from `decodeAll`.
func decodeWithin(_ seconds: Double, _ location: String, options: DecodeOptions = DecodeOptions()) throws(DecodeError) -> Decoded? {
    guard let outcome = decodeWithinResult(seconds, location, options: options) else { return nil }
    return try outcome.get()
}

/// `decodeWithin`, with a failed open as a value.
func decodeWithinResult(_ seconds: Double, _ location: String, options: DecodeOptions = DecodeOptions()) -> Result<Decoded, DecodeError>? {
    let interrupt = DecodeInterrupt()
    let box = DecodeOutcome()
    let thread = Thread {
        box.result.withLock { $0 = Result { () throws(DecodeError) in try decodeAll(location, options: options, interrupt: interrupt) } }
        box.done.signal()
    }
    thread.start()
    guard box.done.wait(timeout: .now() + seconds) == .success else {
        interrupt.interrupt()
        _ = box.done.wait(timeout: .now() + 10)
        return nil
    }
    return box.result.withLock { $0 }
}

private final class DecodeOutcome: Sendable {
    let result = Mutex<Result<Decoded, DecodeError>?>(nil)
    let done = DispatchSemaphore(value: 0)
}
