import DaemonRuntime
import ArgumentParser
import Foundation
import StreamDecode
import TemporalContrast

/// `ssl-daemon embed`: backbone features per time window of media files, as `.npy`.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embed media with a checkpoint's encoder: one row per window per input, float32 [N, D] in .npy.",
        discussion: """
            Windows are consecutive spans of --window seconds from each input's first frame (video) or
            sample (audio); a window is embedded when it holds a frame (video) or audio. Video rows use
            the frame nearest the window's centre; audio rows the encoder's log-mel window centred on it
            (clamped to the audio). A sidecar OUT.jsonl (OUT.npy's name with .jsonl) gives each row's
            input, start, end and the time used. Preprocessing follows the checkpoint's config, as
            `export` writes it in manifest.json. Outputs appear only once complete.
            """
    )

    @Option(help: "A checkpoint file, or a state directory (its newest valid checkpoint).")
    var from: String

    @Option(help: "Encoder to use.")
    var modality: ExportedEncoder.Modality = .video

    @Option(help: "Window length in seconds.")
    var window: Double = 1

    @Option(help: "Also write the exact network inputs as DIR/<modality>_inputs.npy ([N, C, H, W], row order as OUT).")
    var dumpInputs: String?

    @Option(help: "Output .npy file.")
    var out: String

    @Argument(help: "Media files to embed.")
    var media: [String]

    func validate() throws {
        guard window > 0 && window <= 3600 else { throw ValidationError("--window must be in (0, 3600] seconds") }
        guard out.hasSuffix(".npy") else { throw ValidationError("--out must name a .npy file, got '\(out)'") }
        guard !media.isEmpty else { throw ValidationError("give at least one media file") }
    }

    struct Row: Encodable {
        var row: Int
        var input: String
        var start: Double
        var end: Double
        var time: Double
    }

    func run() throws {
        let outputs = StagedOutputs()
        do {
            let model = try TrainedModel(from: from)
            let kind = modality
            guard let encoder = model.encoder(kind) else {
                throw DaemonError.checkpoint(model.url, .missingEncoder(kind))
            }
            let outURL = URL(fileURLWithPath: out)
            try outputs.prepare(directory: outURL.deletingLastPathComponent())
            let dumpDirectory = dumpInputs.map { URL(fileURLWithPath: $0, isDirectory: true) }
            if let dumpDirectory { try outputs.prepare(directory: dumpDirectory) }
            FFmpegLogLevel.quiet.apply()

            var features: [Float] = [], inputs: [Float] = [], rows: [Row] = []
            var progress = ProgressBar("embed", total: media.count, unit: "files")
            defer { progress.finish() }
            for path in media {
                let windows = kind == .video
                    ? try VideoWindows.inputs(path, window: window, config: model.config)
                    : try AudioWindows.inputs(path, window: window, config: model.config)
                guard !windows.isEmpty else { throw DaemonError.media(path, "no \(kind.rawValue) to embed") }
                let itemSize = encoder.inputShape.reduce(1, *)
                // Batches bound the encoder's working memory on long inputs.
                for batch in stride(from: 0, to: windows.count, by: 64) {
                    let slice = windows[batch..<min(batch + 64, windows.count)]
                    let x = slice.flatMap(\.input)
                    precondition(x.count == slice.count * itemSize)
                    features += encoder.features(nchw: x, count: slice.count)
                    if dumpDirectory != nil { inputs += x }
                }
                for w in windows { rows.append(Row(row: rows.count, input: path, start: w.start, end: w.end, time: w.time)) }
                progress.advance()
            }
            try outputs.write(NumpyFile.float32(shape: [rows.count, encoder.featureDimension], values: features), to: outURL)
            let json = JSONEncoder()
            json.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let lines = try rows.map { String(decoding: try json.encode($0), as: UTF8.self) }.joined(separator: "\n") + "\n"
            try outputs.write(Data(lines.utf8), to: outURL.deletingPathExtension().appendingPathExtension("jsonl"))
            if let dumpDirectory {
                try outputs.write(NumpyFile.float32(shape: [rows.count] + encoder.inputShape, values: inputs),
                                  to: dumpDirectory.appendingPathComponent("\(kind.rawValue)_inputs.npy"))
            }
            try outputs.commit()
            print("\(rows.count) rows × \(encoder.featureDimension) → \(outURL.path)")
        } catch {
            outputs.discard()
            FileHandle.standardError.write(Data("ssl-daemon embed: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// One network input with the window it stands for.
struct WindowInput {
    var start: Double
    var end: Double
    var time: Double
    /// NCHW values of one input.
    var input: [Float]
}

/// Video inputs: per window, the frame nearest its centre, centre-cropped to a square, resized to
/// the trained input size and normalised (what `export`'s manifest describes).
enum VideoWindows {
    static func inputs(_ path: String, window: Double, config: DaemonConfig) throws -> [WindowInput] {
        var options = DecodeOptions()
        options.video = config.videoOptions
        options.audio = nil
        let decoder: MediaDecoder
        do { decoder = try MediaDecoder(path, options: options) } catch { throw DaemonError.decode(error) }
        var out: [WindowInput] = []
        var first: Double?
        var best: (index: Int, distance: Double, time: Double, view: ImageView)?
        var lastTime = 0.0, interval = config.fps > 0 ? 1 / config.fps : 0.04
        func flush() {
            guard let b = best, let t0 = first else { return }
            let start = t0 + Double(b.index) * window
            out.append(WindowInput(start: start, end: start + window, time: b.time, input: config.encoderInput.video.evaluationInput(b.view)))
            best = nil
        }
        do {
            while let item = try decoder.next() {
                guard case .video(let f) = item else { continue }
                let t0 = first ?? f.timestamp
                first = t0
                if f.timestamp > lastTime { interval = min(interval, f.timestamp - lastTime) }
                lastTime = f.timestamp
                let index = max(0, Int(((f.timestamp - t0) / window).rounded(.down)))
                if let b = best, b.index != index { flush() }
                let distance = abs(f.timestamp - (t0 + (Double(index) + 0.5) * window))
                if best == nil || distance < best!.distance {
                    best = (index, distance, f.timestamp, ImageView(width: f.width, height: f.height, pixels: f.pixels))
                }
            }
        } catch {
            throw DaemonError.decode(error)
        }
        flush()
        // The last window ends with the media, not past it.
        if var last = out.popLast() {
            last.end = min(last.end, lastTime + interval)
            out.append(last)
        }
        return out
    }
}

/// Audio inputs: the whole track as log-mel frames, then per window the encoder's number of frames
/// centred on the window's centre (clamped to the track).
enum AudioWindows {
    static func inputs(_ path: String, window: Double, config: DaemonConfig) throws -> [WindowInput] {
        var options = DecodeOptions()
        options.video = nil
        options.audio = AudioOptions(sampleRate: config.sampleRate, chunkSamples: config.sampleRate / 10)
        let decoder: MediaDecoder
        do { decoder = try MediaDecoder(path, options: options) } catch {
            if error.kind == .noStreams {
                throw DaemonError.media(path, "no audio stream (--modality audio needs audio)")
            }
            throw DaemonError.decode(error)
        }
        var stream: DecodeBridge.MelStream
        do { stream = try DecodeBridge.MelStream(input: config.encoderInput.audio, source: 0) } catch { throw DaemonError.decode(error) }
        var values: [Float] = []
        var firstCentre: Double?
        var lastSampleTime = 0.0
        do {
            while let item = try decoder.next() {
                guard case .audio(let chunk) = item else { continue }
                lastSampleTime = max(lastSampleTime, chunk.timestamp + chunk.duration)
                if let m = stream.append(chunk) {
                    if firstCentre == nil { firstCentre = m.time }
                    values += m.values
                }
            }
        } catch {
            throw DaemonError.decode(error)
        }
        let input = config.encoderInput.audio
        let bands = input.melBands, frames = input.frames, hop = input.hopSeconds
        let total = values.count / bands
        guard let firstCentre else { throw DaemonError.media(path, "no audio stream (--modality audio needs audio)") }
        guard total >= frames else {
            throw DaemonError.media(path, "\(String(format: "%.2f", Double(total) * hop)) s of audio, shorter than the encoder's \(input.seconds) s window")
        }
        let t0 = firstCentre - input.frameCentreOffset
        let count = max(1, Int(((lastSampleTime - t0) / window).rounded(.up) - 1e-9))
        var out: [WindowInput] = []
        for k in 0..<count {
            let start = t0 + Double(k) * window
            let centre = start + window / 2
            let first = min(max(0, Int(((centre - firstCentre) / hop - Double(frames) / 2).rounded())), total - frames)
            var input = [Float](repeating: 0, count: bands * frames)
            for t in 0..<frames { for b in 0..<bands { input[b * frames + t] = values[(first + t) * bands + b] } }
            let used = firstCentre + (Double(first) + Double(frames) / 2) * hop
            out.append(WindowInput(start: start, end: min(start + window, lastSampleTime), time: used, input: input))
        }
        return out
    }
}
