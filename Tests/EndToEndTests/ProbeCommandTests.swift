import Foundation
import Testing
import TestSupport

/// Runs the built binary as a user would.
@Suite("ssl-daemon probe and bench (binary)", .timeLimit(.minutes(20)))
struct ProbeCommandTests {
    @Test("probe over samples/: one JSON line per clip, exit 0")
    func probeSamples() throws {
        let result = try run(try daemonBinary(), ["probe", repositoryRoot.appendingPathComponent("samples/clips").path])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 5)
        for line in lines {
            let o = try jsonObject(line)
            #expect(o["ok"] as? Bool == true)
            #expect(o["corrupt_packets"] as? Int == 0)
            #expect((o["duration"] as? Double ?? 0) > 2.9)
            #expect(o["input"] is String)
        }
        let byName = try Dictionary(uniqueKeysWithValues: lines.map { line -> (String, [String: Any]) in
            let o = try jsonObject(line)
            return (URL(fileURLWithPath: o["input"] as! String).lastPathComponent, o)
        })
        let h264 = try #require(byName["h264_aac.mp4"])
        let video = try #require(h264["video"] as? [String: Any])
        #expect(video["codec"] as? String == "h264" && video["frames"] as? Int == 100 && video["width"] as? Int == 320)
        #expect(video["height"] as? Int == 240 && video["fps"] as? Double == 25)
        let audio = try #require(h264["audio"] as? [String: Any])
        #expect(audio["codec"] as? String == "aac" && audio["sample_rate"] as? Int == 44_100 && audio["channels"] as? Int == 2)
        #expect(abs((audio["samples"] as? Int ?? 0) - 176_400) <= 1_024)
        #expect(byName["audio_only.m4a"]?["video"] == nil)
        #expect(byName["video_only.mp4"]?["audio"] == nil)
    }

    @Test("probe on bad inputs: exit 1, an error per bad input, never killed by a signal")
    func probeBadInputs() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let zero = dir.appendingPathComponent("zero.mp4").path
        #expect(FileManager.default.createFile(atPath: zero, contents: Data()))
        let text = dir.appendingPathComponent("text.mkv").path
        try "not media".write(toFile: text, atomically: true, encoding: .utf8)
        let good = sampleClip("video_only.mp4")
        let missing = dir.appendingPathComponent("missing.webm").path
        let result = try run(try daemonBinary(), ["probe", zero, good, text, missing])
        #expect(!result.signalled)
        #expect(result.status == 1)
        let lines = try result.stdout.split(separator: "\n").map(jsonObject)
        #expect(lines.count == 4)
        #expect(lines.map { $0["ok"] as? Bool } == [false, true, false, false])
        for (o, path) in zip(lines, [zero, good, text, missing]) where o["ok"] as? Bool == false {
            #expect((o["error"] as? String)?.contains(path) == true)
            #expect(o["error_kind"] is String)
        }
    }

    @Test("probe reads stdin when given -")
    func probeStdin() throws {
        let result = try run(try daemonBinary(), ["probe", "-"], stdin: sampleClip("mpeg4_mp3.mkv"))
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        let o = try jsonObject(try #require(result.stdout.split(separator: "\n").first))
        #expect(o["input"] as? String == "-")
        #expect((o["video"] as? [String: Any])?["frames"] as? Int == 100)
        #expect((o["audio"] as? [String: Any])?["codec"] as? String == "mp3")
    }

    @Test("probe on a live TCP stream from ffmpeg -re decodes until the server ends")
    func probeLiveTCP() throws {
        let port = try freePort()
        let server = try BackgroundProcess("ffmpeg", [
            "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=2",
            "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", "tcp://127.0.0.1:\(port)?listen=1",
        ])
        defer { server.kill() }
        var result: ProcessResult?
        let deadline = monotonicSeconds() + 10
        repeat {
            usleep(200_000)
            result = try run(try daemonBinary(), ["probe", "--timeout", "5", "tcp://127.0.0.1:\(port)"])
        } while result?.status != 0 && (result?.stdout.contains("Connection refused") ?? false) && monotonicSeconds() < deadline
        let r = try #require(result)
        #expect(r.status == 0, "\(r.stdout)")
        let o = try jsonObject(try #require(r.stdout.split(separator: "\n").first))
        let frames = (o["video"] as? [String: Any])?["frames"] as? Int ?? 0
        #expect(frames >= 40 && frames <= 50, "\(frames) frames")
    }

    @Test("bench decode prints the JSON summary last")
    func benchDecode() throws {
        let result = try run(try daemonBinary(), ["bench", "decode", sampleClip("h264_aac.mp4"), "--size", "64", "--threads", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        let o = try jsonObject(try #require(result.stdout.split(separator: "\n").last))
        #expect(o["frames"] as? Int == 100)
        #expect((o["seconds"] as? Double ?? 0) > 0 && (o["fps"] as? Double ?? 0) > 0)
    }

    @Test("decoding a sample 50 times in one process does not grow memory")
    func noLeakOverRepeats() throws {
        let result = try run(try daemonBinary(), ["bench", "decode", sampleClip("h264_aac.mp4"), "--repeat", "50", "--with-audio", "--threads", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        let o = try jsonObject(try #require(result.stdout.split(separator: "\n").last))
        #expect(o["frames"] as? Int == 5_000)
        let first = try #require(o["rss_kb_after_first"] as? Int), end = try #require(o["rss_kb_end"] as? Int)
        // One decode's worth of leaked frames or packets (100 frames) would exceed this over 49 repeats.
        #expect(end - first < 4_096, "RSS grew from \(first) KiB to \(end) KiB")
    }

    @Test("bad arguments are usage errors, not crashes")
    func usageErrors() throws {
        let result = try run(try daemonBinary(), ["bench", "decode", sampleClip("h264_aac.mp4"), "--threads", "0"])
        #expect(result.status == 64 && !result.signalled)
        #expect(result.stderr.contains("--threads"))
    }
}

@Suite("ssl-daemon bench pairing (binary)", .timeLimit(.minutes(20)))
struct PairingBenchCommandTests {
    @Test("all three pair kinds from a clip with audio; none of the audio kind from a video-only clip")
    func pairing() throws {
        let withAudio = try run(try daemonBinary(), ["bench", "pairing", sampleClip("h264_aac.mp4"), "--repeat", "2"])
        #expect(withAudio.status == 0, "\(withAudio.stderr)")
        let o = try jsonObject(try #require(withAudio.stdout.split(separator: "\n").last))
        let pairs = try #require(o["pairs"] as? [String: Int])
        #expect((pairs["temporal"] ?? 0) > 10 && (pairs["audio_video"] ?? 0) > 10, "\(pairs)")
        #expect((o["realtime_factor"] as? Double ?? 0) > 0)
        let silent = try run(try daemonBinary(), ["bench", "pairing", sampleClip("video_only.mp4")])
        #expect(silent.status == 0, "\(silent.stderr)")
        let s = try jsonObject(try #require(silent.stdout.split(separator: "\n").last))
        #expect((s["pairs"] as? [String: Int])?["audio_video"] == 0)
        #expect(((s["pairs"] as? [String: Int])?["temporal"] ?? 0) > 0)
    }
}
