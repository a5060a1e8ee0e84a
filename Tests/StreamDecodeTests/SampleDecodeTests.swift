import Foundation
import StreamDecode
import Testing
import TestSupport

@Suite("Decoding the bundled samples")
struct SampleDecodeTests {
    static let videoClips = ["h264_aac.mp4", "vp9_opus.webm", "mpeg4_mp3.mkv", "video_only.mp4"]
    static let audioClips = ["h264_aac.mp4", "vp9_opus.webm", "mpeg4_mp3.mkv", "audio_only.m4a"]

    @Test("frame count and first/last timestamps agree with ffprobe", arguments: videoClips, [1, 3])
    func framesMatchFFprobe(clip: String, threads: Int) throws {
        let path = sampleClip(clip)
        let reference = try ffprobeVideoTimestamps(path)
        let decoded = try decodeAll(path, options: options(threads: threads))
        #expect(decoded.error == nil)
        #expect(decoded.frames.count == reference.times.count)
        #expect(decoded.stats.videoFramesDecoded == reference.times.count)
        let expectedFirst = reference.times.first! - reference.start
        let expectedLast = reference.times.last! - reference.start
        #expect(abs(decoded.frames.first!.timestamp - expectedFirst) < 1e-3, "first \(decoded.frames.first!.timestamp) vs \(expectedFirst)")
        #expect(abs(decoded.frames.last!.timestamp - expectedLast) < 1e-3, "last \(decoded.frames.last!.timestamp) vs \(expectedLast)")
        // Presentation order: strictly increasing timestamps even with B-frames and frame threads.
        for (a, b) in zip(decoded.frames, decoded.frames.dropFirst()) { #expect(b.timestamp > a.timestamp) }
        #expect(decoded.boundaries.isEmpty)
    }

    @Test("audio sample count agrees with duration × rate within one chunk", arguments: audioClips)
    func audioSampleCount(clip: String) throws {
        let path = sampleClip(clip)
        let duration = try ffprobeDuration(path)
        var o = options()
        o.audio = AudioOptions(sampleRate: 16_000, chunkSamples: 1_600)
        let decoded = try decodeAll(path, options: o)
        #expect(decoded.error == nil)
        let expected = duration * 16_000
        #expect(abs(Double(decoded.audioSamples) - expected) <= 1_600, "\(decoded.audioSamples) samples vs \(expected)")
        // Chunks are full except possibly the last, mono at 16 kHz, and contiguous in time.
        for chunk in decoded.chunks.dropLast() { #expect(chunk.samples.count == 1_600) }
        for chunk in decoded.chunks { #expect(chunk.sampleRate == 16_000) }
        for (a, b) in zip(decoded.chunks, decoded.chunks.dropFirst()) {
            #expect(abs(b.timestamp - (a.timestamp + a.duration)) < 1e-6)
        }
        #expect(abs(decoded.chunks.first!.timestamp) < 0.05)
        #expect(decoded.chunks.allSatisfy { $0.samples.allSatisfy { $0.isFinite && abs($0) <= 1.5 } })
    }

    @Test("a video-only file gives frames and no audio; an audio-only file the reverse")
    func singleStreamFiles() throws {
        let video = try decodeAll(sampleClip("video_only.mp4"))
        #expect(video.info?.audio == nil && video.info?.video != nil)
        #expect(video.chunks.isEmpty && video.frames.count == 75)
        let audio = try decodeAll(sampleClip("audio_only.m4a"))
        #expect(audio.info?.video == nil && audio.info?.audio?.sampleRate == 48_000)
        #expect(audio.frames.isEmpty && audio.audioSamples > 40_000)
    }

    @Test("output size: short side keeps the aspect ratio, exact size is exact, native is native")
    func outputSizes() throws {
        let clip = sampleClip("video_only.mp4")
        let short = try decodeAll(clip, options: options(size: .shortSide(96), audio: false))
        #expect(short.frames.allSatisfy { $0.width == 128 && $0.height == 96 && $0.pixels.count == 128 * 96 * 3 })
        let exact = try decodeAll(clip, options: options(size: .exact(width: 50, height: 70), audio: false))
        #expect(exact.frames.allSatisfy { $0.width == 50 && $0.height == 70 && $0.pixels.count == 50 * 70 * 3 })
        let native = try decodeAll(clip, options: options(size: .native, audio: false))
        #expect(native.frames.allSatisfy { $0.width == 320 && $0.height == 240 })
    }

    @Test("fps subsampling keeps one frame per grid slot")
    func fpsSubsampling() throws {
        let decoded = try decodeAll(sampleClip("h264_aac.mp4"), options: options(fps: 5, audio: false))
        // 4 s at 25 fps on a 0.2 s grid: 20 slots.
        #expect(decoded.frames.count == 20)
        #expect(decoded.stats.videoFramesDecoded == 100)
        let slots = decoded.frames.map { Int(($0.timestamp * 5 + 1e-6).rounded(.down)) }
        #expect(slots == Array(0..<20))
    }

    @Test("variable frame rate input is subsampled on the time grid, not by frame count")
    func variableFrameRate() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let path = dir.appendingPathComponent("vfr.mkv").path
        // 2 s at 50 fps, then 2 s at 10 fps, in one file with real VFR timestamps.
        try ffmpeg([
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=50:duration=2",
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=2",
            "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-fps_mode", "vfr",
            "-c:v", "libx264", "-preset", "ultrafast", path,
        ])
        let all = try decodeAll(path, options: options(audio: false))
        #expect(all.frames.count == 120)
        let sub = try decodeAll(path, options: options(fps: 5, audio: false))
        // One frame per 0.2 s slot in both halves: 10 + 10.
        #expect(sub.frames.count == 20)
    }

    @Test("RGB conversion is right: a solid colour decodes to that colour")
    func solidColour() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let path = dir.appendingPathComponent("orange.mp4").path
        try ffmpeg(["-f", "lavfi", "-i", "color=c=0xFF8000:size=160x120:rate=10:duration=1", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", path])
        let decoded = try decodeAll(path, options: options(size: .exact(width: 16, height: 16), audio: false))
        #expect(decoded.frames.count == 10)
        let p = decoded.frames[5].pixels
        let mean = (0..<3).map { c in stride(from: c, to: p.count, by: 3).reduce(0.0) { $0 + Double(p[$1]) } / Double(p.count / 3) }
        #expect(abs(mean[0] - 255) < 4 && abs(mean[1] - 128) < 4 && abs(mean[2] - 0) < 4, "mean RGB \(mean)")
    }

    @Test("audio is downmixed and resampled faithfully: a 1 kHz tone keeps its level and pitch")
    func toneLevelAndPitch() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let path = dir.appendingPathComponent("tone.wav").path
        try ffmpeg(["-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*1000*t):s=48000:d=2", path])
        let decoded = try decodeAll(path)
        let samples = decoded.chunks.flatMap(\.samples)
        #expect(abs(samples.count - 32_000) <= 64)
        let middle = samples[1_000..<31_000]
        let rms = (middle.reduce(0.0) { $0 + Double($1 * $1) } / Double(middle.count)).squareRoot()
        #expect(abs(rms - 0.5 / 2.0.squareRoot()) < 0.01, "rms \(rms)")
        let crossings = zip(middle, middle.dropFirst()).filter { $0 < 0 && $1 >= 0 }.count
        // 30000 samples at 16 kHz = 1.875 s of a 1 kHz tone.
        #expect(abs(crossings - 1_875) <= 2, "\(crossings) upward zero crossings")
    }

    @Test("a timestamp reset starts a new segment")
    func timestampReset() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let a = dir.appendingPathComponent("a.ts").path, b = dir.appendingPathComponent("b.ts").path
        for (path, pattern) in [(a, "testsrc2"), (b, "smptebars")] {
            try ffmpeg([
                "-f", "lavfi", "-i", "\(pattern)=size=160x120:rate=25:duration=3", "-f", "lavfi", "-i", "sine=f=440:duration=3",
                "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mpegts", path,
            ])
        }
        // Byte-concatenated MPEG-TS: the second file's clock starts again from its beginning.
        let joined = dir.appendingPathComponent("joined.ts")
        try (Data(contentsOf: URL(fileURLWithPath: a)) + Data(contentsOf: URL(fileURLWithPath: b))).write(to: joined)
        let decoded = try decodeAll(joined.path)
        #expect(decoded.boundaries.count == 1)
        #expect(decoded.boundaries.first?.reason == .backwardJump)
        #expect(decoded.stats.segments == 2)
        #expect(decoded.frames.filter { $0.segment == 0 }.count == 75)
        #expect(decoded.frames.filter { $0.segment == 1 }.count == 75)
        #expect(decoded.chunks.contains { $0.segment == 1 })
        // Within a segment, time runs forward.
        for s in 0...1 {
            let times = decoded.frames.filter { $0.segment == s }.map(\.timestamp)
            #expect(zip(times, times.dropFirst()).allSatisfy { $0 < $1 })
        }
    }
}
