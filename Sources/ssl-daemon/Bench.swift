import ArgumentParser
import Foundation
import StreamDecode

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Micro-benchmarks; each prints a JSON summary as its last line.",
        subcommands: [BenchDecode.self]
    )
}

/// `ssl-daemon bench decode FILE`: decode every frame and scale it to size×size RGB24.
struct BenchDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode every video frame of FILE, scale to SIZE×SIZE RGB24, and report frames per second.",
        discussion: #"Last line: {"frames": N, "seconds": S, "fps": F}. Audio is ignored. Compare with: ffmpeg -threads 2 -i FILE -an -vf scale=128:128 -pix_fmt rgb24 -f null -"#
    )

    @Argument(help: "Video file to decode.")
    var file: String

    @Option(help: "Output width and height in pixels.")
    var size: Int = 128

    @Option(help: "Decoder threads.")
    var threads: Int = 2

    @Option(help: "Decode the file this many times in one process (with --with-audio, a leak check).")
    var `repeat`: Int = 1

    @Flag(help: "Also decode and resample the audio stream.")
    var withAudio = false

    @Option(help: "swscale filter: \(VideoOptions.Scaling.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scaling: String = "bilinear"

    @OptionGroup var ffmpegLog: FFmpegLogOption

    func validate() throws {
        if size < 2 { throw ValidationError("--size must be at least 2, got \(size)") }
        if threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if `repeat` < 1 { throw ValidationError("--repeat must be at least 1, got \(`repeat`)") }
        if VideoOptions.Scaling(rawValue: scaling) == nil {
            throw ValidationError("--scaling must be one of \(VideoOptions.Scaling.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        ffmpegLog.apply()
        var options = DecodeOptions()
        if !withAudio { options.audio = nil }
        options.video = VideoOptions(size: .exact(width: size, height: size), scaling: VideoOptions.Scaling(rawValue: scaling)!)
        options.decoderThreads = threads
        let clock = ContinuousClock()
        let start = clock.now
        var frames = 0
        var checksum: UInt64 = 0
        var rssAfterFirst = 0
        do {
            for round in 0..<`repeat` {
                let decoder = try MediaDecoder(file, options: options)
                while let item = try decoder.next() {
                    if case .video(let frame) = item {
                        frames += 1
                        // Touch the pixels so the work cannot be skipped.
                        checksum &+= UInt64(frame.pixels[frame.pixels.count / 2])
                    }
                }
                if round == 0 { rssAfterFirst = residentKilobytes() }
            }
        } catch {
            FileHandle.standardError.write(Data("ssl-daemon bench decode: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let elapsed = start.duration(to: clock.now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        FileHandle.standardError.write(Data("decoded \(frames) frames of \(file) at \(size)x\(size) with \(threads) threads (checksum \(checksum))\n".utf8))
        let memory = `repeat` > 1 ? #", "rss_kb_after_first": \#(rssAfterFirst), "rss_kb_end": \#(residentKilobytes())"# : ""
        print(#"{"frames": \#(frames), "seconds": \#(round3(seconds)), "fps": \#((Double(frames) / seconds * 10).rounded() / 10)\#(memory)}"#)
    }

    /// Resident set size from /proc/self/statm, in KiB.
    private func residentKilobytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024 : 0
    }
}
