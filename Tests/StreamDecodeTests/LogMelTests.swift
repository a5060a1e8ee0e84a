import Foundation
import StreamDecode
import Testing
import TestSupport

/// Checks the av_tx log-mel against the committed NumPy reference (benchmarks/logmel_reference.py).
@Suite("Log-mel spectrogram")
struct LogMelTests {
    static func fixture(_ name: String) throws -> URL {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
            throw TestFailure("missing fixture \(name)")
        }
        return url
    }

    static func floats(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: fixture(name))
        return data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
    }

    struct Parameters: Decodable {
        var sample_rate: Int, window: Int, hop: Int, fft_size: Int, mel_bands: Int
        var fmin: Double, fmax: Double, log_offset: Double, frames: Int
    }

    @Test("matches the NumPy reference", arguments: [("logmel_expected", "default"), ("logmel2_expected", "custom")])
    func matchesReference(name: String, label: String) throws {
        let p = try JSONDecoder().decode(Parameters.self, from: Data(contentsOf: Self.fixture("\(name).json")))
        var o = LogMelOptions()
        o.sampleRate = p.sample_rate
        o.window = p.window
        o.hop = p.hop
        o.fftSize = p.fft_size
        o.melBands = p.mel_bands
        o.lowHz = p.fmin
        o.highHz = p.fmax
        o.logOffset = Float(p.log_offset)
        if label == "default" { #expect(o == { var d = LogMelOptions(); d.fftSize = 512; d.highHz = 8000; return d }()) }
        let input = try Self.floats("logmel_input.f32")
        let expected = try Self.floats("\(name).f32")
        let mel = try LogMelSpectrogram(options: o)
        #expect(mel.frameCount(sampleCount: input.count) == p.frames)
        let got = mel.compute(input)
        #expect(got.count == expected.count)
        var worst: Float = 0
        for (g, e) in zip(got, expected) { worst = max(worst, abs(g - e) / max(1, abs(e))) }
        #expect(worst < 1e-3, "worst relative error \(worst)")
    }

    @Test("a pure tone lights up the band that contains it")
    func toneBand() throws {
        let spectrogram = try LogMelSpectrogram()
        let tone = (0..<16_000).map { Float(sin(2 * Double.pi * 1_000 * Double($0) / 16_000)) }
        let out = spectrogram.compute(tone)
        let bands = spectrogram.options.melBands
        let frame = Array(out[(50 * bands)..<(51 * bands)])
        let peak = frame.indices.max { frame[$0] < frame[$1] }!
        // Band centres on the HTK scale from 0 to 8 kHz; 1 kHz falls in the band whose centre is nearest.
        func mel(_ f: Double) -> Double { 2595 * log10(1 + f / 700) }
        let step = mel(8_000) / Double(bands + 1)
        let expected = Int((mel(1_000) / step).rounded()) - 1
        #expect(abs(peak - expected) <= 1, "peak band \(peak), expected about \(expected)")
    }

    @Test("rejects impossible parameters")
    func rejectsBadParameters() {
        var o = LogMelOptions()
        o.fftSize = 300
        #expect(throws: DecodeError.self) { try LogMelSpectrogram(options: o) }
        var high = LogMelOptions()
        high.highHz = 9_000
        #expect(throws: DecodeError.self) { try LogMelSpectrogram(options: high) }
    }
}
