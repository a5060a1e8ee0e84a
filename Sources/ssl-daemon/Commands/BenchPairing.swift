import ArgumentParser
import DaemonRuntime
import Foundation
import StreamDecode
import TemporalContrast

/// `ssl-daemon bench pairing FILE`: the pairing stage alone on one core, decoding excluded.
struct BenchPairing: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pairing",
        abstract: "Time the pairing stage (all pair kinds, augmentation, replay buffer) on one core, decoding excluded.",
        discussion: #"FILE is decoded first (frames at the default working resolution, audio as log-mel), then fed through the stage as fast as it goes. Last line: {"video_seconds": V, "seconds": S, "realtime_factor": R, ...}."#
    )

    @Argument(help: "Media file (video, ideally with audio).")
    var file: String

    @Option(help: "Short side of the working resolution in pixels.")
    var size: Int = 128

    @Option(help: "Times to feed the decoded clip through the stage (the timeline continues).")
    var `repeat`: Int = 3

    @OptionGroup var ffmpegLog: FFmpegLogOption

    func validate() throws {
        if size < 32 { throw ValidationError("--size must be at least 32") }
        if `repeat` < 1 { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        ffmpegLog.apply()
        ComputeThreads.configure(1)
        var options = DecodeOptions()
        options.video = VideoOptions(size: .shortSide(size))
        options.decoderThreads = 2
        var frames: [TimedFrame] = []
        var mels: [MelChunk] = []
        do {
            let decoder = try MediaDecoder(file, options: options)
            var melStream = try DecodeBridge.MelStream(input: DaemonConfig().encoderInput.audio, source: 0)
            while let item = try decoder.next() {
                switch item {
                case .video(let f): frames.append(DecodeBridge.frame(f, source: 0))
                case .audio(let chunk): if let m = melStream.append(chunk) { mels.append(m) }
                case .segmentBoundary: break
                }
            }
        } catch {
            FileHandle.standardError.write(Data("ssl-daemon bench pairing: \(error)\n".utf8))
            throw ExitCode(1)
        }
        guard let last = frames.last else {
            FileHandle.standardError.write(Data("ssl-daemon bench pairing: \(file) has no video frames\n".utf8))
            throw ExitCode(1)
        }
        let clipSeconds = last.time + 0.04
        let config = PairingConfig()
        var stage = PairingStage(source: 0, config: config, seed: 1)
        var buffer = ReplayBuffer(byteLimit: config.bufferBytes)
        var rng = RandomSource(seed: 2)
        var counts: [PairKind: Int] = [:]
        var checksum: Float = 0
        let clock = ContinuousClock()
        let start = clock.now
        for round in 0..<`repeat` {
            let offset = Double(round) * clipSeconds
            var nextMel = 0
            for var frame in frames {
                frame.time += offset
                while nextMel < mels.count && mels[nextMel].time + offset <= frame.time + 0.5 {
                    var m = mels[nextMel]
                    m.time += offset
                    stage.ingest(m)
                    nextMel += 1
                }
                for example in stage.ingest(frame) {
                    counts[example.kind, default: 0] += 1
                    // Two augmented views per example, as a batch would draw them.
                    checksum += config.image.apply(example.anchor, rng: &rng)[0]
                    if let p = example.positive { checksum += config.image.apply(p, rng: &rng)[0] }
                    if let a = example.audio { checksum += config.audio.apply(a, rng: &rng)[0] }
                    buffer.insert(example)
                }
            }
        }
        let elapsed = start.duration(to: clock.now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let videoSeconds = clipSeconds * Double(`repeat`)
        let w = frames[0].width, h = frames[0].height
        FileHandle.standardError.write(Data("bench pairing: \(frames.count * `repeat`) frames at \(w)x\(h), \(mels.count) mel chunks per pass, buffer \(buffer.count) examples (\(buffer.byteCount >> 20) MiB), lost tracks \(stage.lostTracks), checksum \(checksum)\n".utf8))
        let factor = videoSeconds / seconds
        print(#"{"video_seconds": \#(round3(videoSeconds)), "seconds": \#(round3(seconds)), "realtime_factor": \#((factor * 10).rounded() / 10), "frames_per_second": \#((Double(frames.count * `repeat`) / seconds * 10).rounded() / 10), "pairs": {"temporal": \#(counts[.temporal] ?? 0), "tracked": \#(counts[.tracked] ?? 0), "audio_video": \#(counts[.audioVideo] ?? 0)}}"#)
    }
}
