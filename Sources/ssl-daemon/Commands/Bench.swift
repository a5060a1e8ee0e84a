import ArgumentParser
import Foundation
import StreamDecode
import TemporalContrast

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Micro-benchmarks; each prints a JSON summary as its last line.",
        subcommands: [BenchDecode.self, BenchTrain.self, BenchGemm.self, BenchPairing.self, BenchDistributed.self]
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

    @Option(help: "swscale filter.")
    var scaling: VideoOptions.Scaling = .bilinear

    @OptionGroup var ffmpegLog: FFmpegLogOption

    func validate() throws {
        if size < 2 { throw ValidationError("--size must be at least 2, got \(size)") }
        if threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if `repeat` < 1 { throw ValidationError("--repeat must be at least 1, got \(`repeat`)") }
    }

    func run() throws {
        ffmpegLog.apply()
        var options = DecodeOptions()
        if !withAudio { options.audio = nil }
        options.video = VideoOptions(size: .exact(width: size, height: size), scaling: scaling)
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

/// `ssl-daemon bench train --preset reference`: time MoCo steps of the reference workload.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time training steps of a preset workload on random inputs.",
        discussion: #"Last line: {"pairs_per_second": P, "ms_per_step": M, "gflops": G}. Compare with benchmarks/train_reference_torch.py."#
    )

    @Option(help: "Workload preset.")
    var preset: TrainPreset = .reference

    @Option(help: "Compute threads (OpenBLAS and our own loops).")
    var threads: Int = 2

    @Option(help: "Timed steps.")
    var steps: Int = 30

    @Option(help: "Untimed warm-up steps (at least 1: the first counts the step's FLOPs).")
    var warmup: Int = 5

    @Option(help: "Random seed for weights and inputs.")
    var seed: UInt64 = 0

    @Flag(help: "Also print, on stderr, the time in matrix products and convolutions per shape and the time outside them.")
    var profile = false

    @Option(help: "How convolutions are computed.")
    var convolution: ConvolutionEngine = .onednn

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if steps < 1 || warmup < 1 { throw ValidationError("--steps and --warmup must be at least 1") }
    }

    func run() throws {
        ComputeThreads.configure(threads, convolutions: convolution)
        let (config, batchSize, imageSize) = preset.workload(seed: seed)
        let learner = Learner(config: config)
        var rng = RandomSource(seed: seed &+ 1)
        let shape = [batchSize, imageSize, imageSize, 3]
        let count = shape.reduce(1, *)
        let anchors = Tensor(shape: shape, storage: (0..<count).map { _ in rng.normal() })
        let positives = Tensor(shape: shape, storage: (0..<count).map { _ in rng.normal() })
        var batch = Learner.Batch()
        batch.anchors = anchors
        batch.positives = positives
        // The useful FLOPs of a step are the matrix products' (2 per multiply-add), counted on the
        // first warm-up step: for the reference preset this is ReferenceWorkload.flopsPerPair.
        GEMMProfile.start()
        _ = learner.train(batch)
        let flopsPerPair = GEMMProfile.stop().reduce(0) { $0 + $1.1.flops } / Double(batchSize)
        for _ in 1..<max(1, warmup) { _ = learner.train(batch) }
        let clock = ContinuousClock()
        let start = clock.now
        var last: Learner.Report?
        if profile { GEMMProfile.start() }
        for _ in 0..<steps { last = learner.train(batch) }
        let elapsed = start.duration(to: clock.now)
        if profile { Self.report(GEMMProfile.stop(), steps: steps, elapsed: elapsed) }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let perStep = seconds / Double(steps)
        let pairs = Double(batchSize) / perStep
        let gflops = flopsPerPair * pairs / 1e9
        FileHandle.standardError.write(Data("bench train: \(steps) steps, loss \(last?.loss ?? .nan), BLAS core \(BLASKernelSelection.description), \(threads) threads, convolutions \(convolution.rawValue), \(String(format: "%.1f", flopsPerPair / 1e6)) MFLOP/pair (\(preset.rawValue): batch \(batchSize), \(imageSize)×\(imageSize))\n".utf8))
        print(#"{"pairs_per_second": \#((pairs * 10).rounded() / 10), "ms_per_step": \#((perStep * 1e4).rounded() / 10), "gflops": \#((gflops * 10).rounded() / 10), "blas_core": "\#(ComputeThreads.blasCore)"}"#)
    }

    /// The product shapes of a step, slowest first, and the share of the step outside them.
    static func report(_ table: [(GEMMProfile.Entry, GEMMProfile.Totals)], steps: Int, elapsed: Duration) {
        let stepMs = (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18) * 1000 / Double(steps)
        var lines = ["  operation                                          m × n × k             calls/step  ms/step  GFLOP/s"]
        var gemmMs = 0.0
        for (e, t) in table {
            let ms = t.seconds * 1000 / Double(steps)
            gemmMs += ms
            let operation = e.operation.padding(toLength: 50, withPad: " ", startingAt: 0)
            let shape = "\(e.m) × \(e.n) × \(e.k)".padding(toLength: 20, withPad: " ", startingAt: 0)
            lines.append(String(format: "  %@ %@ %10.1f %8.2f %8.1f", operation, shape, Double(t.calls) / Double(steps), ms, t.flops / t.seconds / 1e9))
        }
        lines.append(String(format: "  step %.1f ms: products and convolutions %.1f ms (%.0f %%), everything else %.1f ms (%.0f %%)",
                            stepMs, gemmMs, 100 * gemmMs / stepMs, stepMs - gemmMs, 100 * (stepMs - gemmMs) / stepMs))
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }
}
