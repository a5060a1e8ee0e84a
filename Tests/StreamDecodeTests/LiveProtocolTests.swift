import Foundation
import StreamDecode
import Testing
import TestSupport

/// Every live protocol against its real server on 127.0.0.1 (`LiveServer`): what arrives has the
/// timestamps of the served clip (25 fps video, contiguous audio on the same clock).
@Suite("Live protocols: decoding", .serialized, .timeLimit(.minutes(10)))
struct LiveProtocolTests {
    /// The FFmpeg options the daemon derives from each server's `[streams.NAME]` options.
    static func formatOptions(_ server: LiveServer) -> [String: String] {
        switch server.kind {
        case .rtspTCP: ["rtsp_transport": "tcp"]
        case .rtspUDP: ["rtsp_transport": "udp"]
        case .srt: ["passphrase": server.secret, "latency": "200000"]
        case .hls: ["headers": "X-Token: \(server.secret)\r\n"]
        default: [:]
        }
    }

    /// Opens the server's URL, retrying while the server is still starting (no listener yet).
    static func connect(_ server: LiveServer, options: DecodeOptions) throws -> MediaDecoder {
        let deadline = monotonicSeconds() + 30
        while true {
            do { return try MediaDecoder(server.url(), options: options) } catch {
                if monotonicSeconds() > deadline { throw error }
                usleep(300_000)
            }
        }
    }

    /// The error opening `url` gives once the server is up: tries for up to 30 s until it is
    /// `unauthorized` (before the server listens, it is a refused connection or a 404).
    static func refusal(_ url: String) -> DecodeError? {
        var options = DecodeOptions()
        options.ioTimeout = 5
        let deadline = monotonicSeconds() + 30
        var failure: DecodeError?
        while failure?.kind != .unauthorized && monotonicSeconds() < deadline {
            do { _ = try MediaDecoder(url, options: options) } catch { failure = error }
            if failure?.kind != .unauthorized { usleep(300_000) }
        }
        return failure
    }

    @Test("video and audio arrive with the clip's timestamps", arguments: LiveServer.Kind.allCases)
    func timestamps(kind: LiveServer.Kind) throws {
        let work = try makeTemporaryDirectory("ssl-proto")
        defer { removeTemporaryDirectory(work) }
        let server = try LiveServer(kind, clip: try makeLiveClip(in: work, seconds: 30), work: work)
        defer { server.kill() }
        var options = DecodeOptions()
        options.video = VideoOptions(size: .shortSide(64))
        options.ioTimeout = 5
        options.formatOptions = Self.formatOptions(server)
        let decoder = try Self.connect(server, options: options)

        var video: [VideoFrame] = [], audio: [AudioChunk] = []
        while video.count < 75, let item = try decoder.next() {
            switch item {
            case .video(let f): video.append(f)
            case .audio(let c): audio.append(c)
            case .segmentBoundary: break
            }
        }
        #expect(video.count == 75, "\(kind): \(video.count) frames")
        #expect(audio.count >= 10, "\(kind): \(audio.count) audio chunks")
        #expect(Set(video.map(\.segment)).count == 1, "\(kind): the timeline jumped within one connection")
        // 25 fps: consecutive frames 40 ms apart (a UDP loss may skip one frame, never go back).
        let steps = zip(video.dropFirst(), video).map { $0.timestamp - $1.timestamp }
        #expect(steps.allSatisfy { $0 > 0.035 }, "\(kind): frame steps \(steps.prefix(10))")
        let median = steps.sorted()[steps.count / 2]
        #expect(abs(median - 0.04) < 0.002, "\(kind): median frame step \(median) s")
        // Audio is contiguous: each chunk starts where the previous one ended.
        let gaps = zip(audio.dropFirst(), audio).map { $0.timestamp - ($1.timestamp + $1.duration) }
        let contiguous = gaps.filter { abs($0) < 0.005 }.count
        #expect(contiguous >= gaps.count * 9 / 10, "\(kind): audio gaps \(gaps.prefix(10))")
        // One clock for both: the audio covers the same stretch of time as the video.
        let videoSpan = video.first!.timestamp...video.last!.timestamp
        let audioStart = audio.first!.timestamp
        #expect(abs(audioStart - videoSpan.lowerBound) < 1.0, "\(kind): audio starts at \(audioStart), video at \(videoSpan.lowerBound)")
        #expect(video.last!.timestamp - video.first!.timestamp > 2.5)
    }

    @Test("RTSP with a wrong password is `unauthorized`, and the error never shows the password")
    func rtspWrongPassword() throws {
        let work = try makeTemporaryDirectory("ssl-proto")
        defer { removeTemporaryDirectory(work) }
        let server = try LiveServer(.rtspTCP, clip: try makeLiveClip(in: work, seconds: 10), work: work)
        defer { server.kill() }
        let wrong = "not-the-password-91"
        let error = try #require(Self.refusal(server.url(password: wrong)))
        #expect(error.kind == .unauthorized, "\(error)")
        #expect(!error.isTransient)
        #expect(!"\(error)".contains(wrong) && !String(reflecting: error).contains(wrong))
        #expect("\(error)".contains("401"))
    }

    @Test("HLS without the header its server requires is `unauthorized` (403)")
    func hlsMissingHeader() throws {
        let work = try makeTemporaryDirectory("ssl-proto")
        defer { removeTemporaryDirectory(work) }
        let server = try LiveServer(.hls, clip: try makeLiveClip(in: work, seconds: 10), work: work)
        defer { server.kill() }
        let failure = Self.refusal(server.url())
        #expect(failure?.kind == .unauthorized, "\(String(describing: failure))")
    }
}
