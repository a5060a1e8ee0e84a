import Foundation
import Glibc
import StreamDecode
import Testing
import TestSupport

/// Damaged and wrong inputs give a typed error naming the input, never a crash.
@Suite("Bad inputs")
struct BadInputTests {
    /// Builds each damaged file from the H.264+AAC sample.
    static func makeBadFiles(in dir: URL) throws -> [String: String] {
        let sample = try Data(contentsOf: URL(fileURLWithPath: sampleClip("h264_aac.mp4")))
        var rng = SplitMix(seed: 42)
        func write(_ name: String, _ data: Data) throws -> String {
            let url = dir.appendingPathComponent(name)
            try data.write(to: url)
            return url.path
        }
        var files: [String: String] = [:]
        files["zero"] = try write("zero.mp4", Data())
        files["random"] = try write("random.mp4", Data((0..<200_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
        files["cut"] = try write("cut.mp4", sample.prefix(sample.count * 30 / 100))
        var moov = sample
        let range = moov.range(of: Data("moov".utf8))!
        let size = moov[(range.lowerBound - 4)..<range.lowerBound].reduce(0) { $0 << 8 | Int($1) }
        for i in range.upperBound..<(range.lowerBound - 4 + size) { moov[i] = UInt8(truncatingIfNeeded: rng.next()) }
        files["moov"] = try write("moov.mp4", moov)
        files["text"] = try write("notes.mp4", Data("these are notes, not a video\n".utf8))
        files["missing"] = dir.appendingPathComponent("does-not-exist.mp4").path
        let sub = dir.appendingPathComponent("a-directory.mp4")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        files["directory"] = sub.path
        var middle = sample
        let start = middle.count * 40 / 100, end = middle.count * 55 / 100
        for i in start..<end { middle[i] = UInt8(truncatingIfNeeded: rng.next()) }
        files["middle"] = try write("middle.mp4", middle)
        return files
    }

    @Test("each bad input gives its typed error, naming the input")
    func typedErrors() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let files = try Self.makeBadFiles(in: dir)
        let expected: [String: Set<DecodeError.Kind>] = [
            "zero": [.invalidData], "random": [.invalidData], "cut": [.truncated],
            "moov": [.invalidData, .noStreams], "text": [.invalidData], "missing": [.notFound], "directory": [.notFound],
        ]
        for (name, kinds) in expected {
            let path = files[name]!
            var failure: DecodeError?
            do { failure = try decodeAll(path).error } catch { failure = error }
            let error = failure
            #expect(error != nil, "\(name) decoded without error")
            guard let error else { continue }
            #expect(kinds.contains(error.kind), "\(name): \(error)")
            #expect(error.input == path)
            #expect(error.description.contains(path))
            #expect(!error.message.isEmpty)
        }
    }

    @Test("a truncated file still delivers what it holds before reporting truncation")
    func truncatedDeliversPrefix() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let decoded = try decodeAll(try Self.makeBadFiles(in: dir)["cut"]!)
        #expect(decoded.error?.kind == .truncated)
        #expect(decoded.frames.count > 10 && decoded.frames.count < 100)
        #expect(!decoded.chunks.isEmpty)
    }

    @Test("random bytes over the middle: decodes what it can and counts corrupt packets")
    func corruptMiddle() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let decoded = try decodeAll(try Self.makeBadFiles(in: dir)["middle"]!, options: options(threads: 2))
        #expect(decoded.error == nil)
        #expect(decoded.stats.corruptPackets + decoded.stats.damagedFrames > 0)
        #expect(decoded.frames.count > 40)
        #expect(decoded.frames.last!.timestamp > 3.5, "decoding went on past the damage")
    }

    @Test("a file with neither video nor audio is a clear error")
    func noStreams() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let path = dir.appendingPathComponent("subs.srt").path
        try "1\n00:00:00,000 --> 00:00:01,000\nhello\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try MediaDecoder(path) } throws: { ($0 as? DecodeError)?.kind == .noStreams }
    }

    @Test("a mid-stream switch to a geometry swscale rejects neither crashes nor delivers garbage")
    func hostileResolutionChange() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let a = dir.appendingPathComponent("a.ts").path, thin = dir.appendingPathComponent("thin.ts").path
        try ffmpeg(["-f", "lavfi", "-i", "testsrc=size=64x64:rate=25:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", a])
        try ffmpeg(["-f", "lavfi", "-i", "testsrc=size=16384x2:rate=25:duration=0.4", "-c:v", "libx264", "-pix_fmt", "yuv420p", thin])
        let joined = dir.appendingPathComponent("joined.ts")
        try (Data(contentsOf: URL(fileURLWithPath: a)) + Data(contentsOf: URL(fileURLWithPath: thin))).write(to: joined)
        let decoded = try decodeAll(joined.path, options: options(size: .shortSide(32), audio: false))
        #expect(decoded.stats.videoFramesDecoded == 35)
        #expect(decoded.frames.count + decoded.stats.unconvertibleFrames == 35)
        // Short-side resizing caps the long side, so a 16384×2 frame cannot ask for gigabytes.
        #expect(decoded.frames.allSatisfy { $0.pixels.count == $0.width * $0.height * 3 && max($0.width, $0.height) <= VideoOptions.maximumSide })
    }

    @Test("audio whose channels FFmpeg cannot name is still downmixed, and video is unaffected")
    func unnamedChannels() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let path = dir.appendingPathComponent("nine.mkv").path
        var args = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=25:duration=1"]
        for i in 1...9 { args += ["-f", "lavfi", "-i", "sine=f=\(200 * i):d=1"] }
        args += ["-filter_complex", (1...9).map { "[\($0):a]" }.joined() + "amerge=inputs=9[a]", "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-c:a", "pcm_s16le", path]
        try ffmpeg(args)
        let decoded = try decodeAll(path)
        #expect(decoded.error == nil, "\(String(describing: decoded.error))")
        #expect(decoded.info?.audio?.channels == 9)
        #expect(decoded.frames.count == 25)
        #expect(abs(decoded.audioSamples - 16_000) <= 1_600)
        #expect(decoded.chunks.contains { $0.samples.contains { abs($0) > 0.01 } })
    }

    @Test("a FIFO is refused at once instead of blocking without a deadline")
    func fifoRefused() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let path = dir.appendingPathComponent("stream.fifo").path
        #expect(mkfifo(path, 0o600) == 0)
        let started = monotonicSeconds()
        #expect { try MediaDecoder(path) } throws: { ($0 as? DecodeError)?.kind == .notFound }
        #expect(monotonicSeconds() - started < 1)
    }

    @Test("bad options are rejected before anything is opened")
    func badOptions() {
        var o = DecodeOptions()
        o.decoderThreads = 0
        #expect { try MediaDecoder(sampleClip("h264_aac.mp4"), options: o) } throws: { ($0 as? DecodeError)?.kind == .invalidOptions }
        var unknown = DecodeOptions()
        unknown.formatOptions = ["no_such_option": "1"]
        #expect { try MediaDecoder(sampleClip("h264_aac.mp4"), options: unknown) } throws: {
            ($0 as? DecodeError).map { $0.kind == .invalidOptions && $0.message.contains("no_such_option") } ?? false
        }
    }
}

/// Deterministic bytes for damaged files.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
