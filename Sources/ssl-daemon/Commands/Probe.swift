import ArgumentParser
import Foundation
import Glibc
import StreamDecode

/// `ssl-daemon probe MEDIA...`: decode each input fully and print one JSON line about it.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode media fully and print one JSON object per input.",
        discussion: "Exits 0 when every input decoded, 1 otherwise. A directory argument probes the media files below it."
    )

    @Argument(help: "Media files, directories, URLs, or - for stdin.")
    var inputs: [String]

    @Option(help: "Decoder threads for video.")
    var threads: Int = 1

    @Option(help: "Seconds a live source may block in one read before it is abandoned.")
    var timeout: Double = 10

    @OptionGroup var ffmpegLog: FFmpegLogOption

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if !(timeout > 0) { throw ValidationError("--timeout must be positive, got \(timeout)") }
    }

    func run() throws {
        ffmpegLog.apply()
        var allOK = true
        let all = expand(inputs)
        // Only for many inputs: one or two answer at once.
        var progress = ProgressBar("probe", total: all.count, unit: "files", enabled: all.count > 2 && isatty(STDERR_FILENO) == 1)
        for input in all {
            let report = ProbeReport.probe(input, threads: threads, timeout: timeout)
            allOK = allOK && report.ok
            // Unbuffered: one line per input as soon as it is known, even when stdout is a pipe.
            progress.clear()
            FileHandle.standardOutput.write(Data((report.jsonLine() + "\n").utf8))
            progress.advance()
        }
        progress.finish()
        if !allOK { throw ExitCode(1) }
    }

    /// Directories expand to the regular files below them, sorted, skipping hidden entries and
    /// files that are plainly not media (scripts, docs, data).
    private func expand(_ inputs: [String]) -> [String] {
        let skipped: Set<String> = ["sh", "md", "txt", "csv", "json", "jsonl", "py", "toml", "npy", "f32"]
        var out: [String] = []
        for input in inputs {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue,
                let walker = FileManager.default.enumerator(atPath: input)
            else {
                out.append(input)
                continue
            }
            var found: [String] = []
            // Relative names keep the user's own prefix in the report ("samples/clips/x.mp4").
            while let relative = walker.nextObject() as? String {
                let path = (input as NSString).appendingPathComponent(relative)
                let name = (relative as NSString).lastPathComponent
                var sub: ObjCBool = false
                if relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
                let type = (try? FileManager.default.attributesOfItem(atPath: path)[.type]) as? FileAttributeType
                if FileManager.default.fileExists(atPath: path, isDirectory: &sub), !sub.boolValue, type == .typeRegular,
                    !skipped.contains((name as NSString).pathExtension.lowercased())
                {
                    found.append(path)
                }
            }
            out += found.sorted()
        }
        return out
    }
}

/// What `probe` prints for one input.
struct ProbeReport: Encodable {
    struct Video: Encodable {
        var codec: String
        var width: Int
        var height: Int
        var fps: Double?
        var frames: Int
    }

    struct Audio: Encodable {
        var codec: String
        var sample_rate: Int
        var channels: Int
        var samples: Int
    }

    var input: String
    var ok: Bool
    var error: String?
    var error_kind: String?
    var format: String?
    var video: Video?
    var audio: Audio?
    var duration: Double?
    var corrupt_packets: Int
    var damaged_frames: Int
    var segments: Int?

    static func probe(_ input: String, threads: Int, timeout: Double) -> ProbeReport {
        var options = DecodeOptions()
        // Probing counts frames: a tiny output size keeps conversion cost negligible.
        options.video = VideoOptions(size: .exact(width: 8, height: 8), scaling: .fastBilinear)
        options.decoderThreads = threads
        options.ioTimeout = timeout
        // Printed URLs never carry credentials.
        let shown = MediaSource.redacted(input)
        var report = ProbeReport(input: shown, ok: false, corrupt_packets: 0, damaged_frames: 0)
        let decoder: MediaDecoder
        do {
            decoder = try MediaDecoder(input, options: options)
        } catch {
            report.error = error.description
            report.error_kind = error.kind.rawValue
            return report
        }
        do {
            while try decoder.next() != nil {}
            let s = decoder.stats
            if s.videoFramesDecoded == 0 && s.audioSamplesDecoded == 0 {
                report.error = "\(shown): nothing could be decoded (\(s.corruptPackets) corrupt packets)"
                report.error_kind = "invalid_data"
            } else {
                report.ok = true
            }
        } catch {
            report.error = error.description
            report.error_kind = error.kind.rawValue
        }
        report.fill(from: decoder)
        return report
    }

    private mutating func fill(from decoder: MediaDecoder) {
        let s = decoder.stats
        corrupt_packets = s.corruptPackets
        damaged_frames = s.damagedFrames
        segments = s.segments
        format = decoder.info.format
        if let v = decoder.info.video {
            video = Video(codec: v.codec, width: v.width, height: v.height, fps: v.fps.map(round3), frames: s.videoFramesDecoded)
        }
        if let a = decoder.info.audio {
            audio = Audio(codec: a.codec, sample_rate: a.sampleRate, channels: a.channels, samples: s.audioSamplesDecoded)
        }
        duration = round3(decoder.info.duration ?? s.endTimestamp)
    }

    func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return #"{"ok":false,"error":"unencodable report"}"# }
        return String(decoding: data, as: UTF8.self)
    }
}

func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
