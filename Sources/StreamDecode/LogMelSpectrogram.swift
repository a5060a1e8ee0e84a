internal import CFFmpeg
import Foundation

/// Parameters of a log-mel spectrogram. Defaults: 16 kHz, 25 ms window, 10 ms hop, 64 mel bands.
public struct LogMelOptions: Sendable, Equatable, Codable {
    /// Sample rate of the input in Hz.
    public var sampleRate: Int = 16_000
    /// Window length in samples (400 = 25 ms at 16 kHz).
    public var window: Int = 400
    /// Hop between frame starts in samples (160 = 10 ms at 16 kHz).
    public var hop: Int = 160
    /// FFT size, a power of two >= window; nil picks the next power of two.
    public var fftSize: Int? = nil
    public var melBands: Int = 64
    /// Lowest and highest filter edges in Hz; nil for `highHz` means Nyquist.
    public var lowHz: Double = 0
    public var highHz: Double? = nil
    /// Added before the natural log so silence stays finite.
    public var logOffset: Float = 1e-6

    public init() {}

    var resolvedFFTSize: Int {
        if let fftSize { return fftSize }
        var n = 1
        while n < window { n <<= 1 }
        return n
    }
}

/// Log-mel spectrogram over libavutil's real FFT (av_tx, AV_TX_FLOAT_RDFT).
///
/// Frame `i` covers samples `[i*hop, i*hop + window)` (no centre padding; `1 + (n - window) / hop`
/// frames when `n >= window`, else none). Each frame is multiplied by a periodic Hann window,
/// zero-padded to the FFT size, and its power spectrum |X[k]|² is projected on `melBands`
/// triangular filters equally spaced on the HTK mel scale, mel(f) = 2595·log10(1 + f/700), between
/// `lowHz` and `highHz`, without area normalisation. Output is log(energy + logOffset), frames ×
/// bands, row-major. `benchmarks/logmel_reference.py` is the independent NumPy definition.
///
/// Owns its AVTXContext and aligned buffers; one instance per thread.
public final class LogMelSpectrogram {
    public let options: LogMelOptions
    private let fftSize: Int
    private var context: OpaquePointer?
    private let transform: av_tx_fn
    private let window: [Float]
    /// Filter weights stored sparsely: for band m, weights for bins firstBin[m] ..< firstBin[m] + weights[m].count.
    private let firstBin: [Int]
    private let weights: [[Float]]
    private let fftIn: UnsafeMutablePointer<Float>
    private let fftOut: UnsafeMutablePointer<Float>

    public init(options: LogMelOptions = LogMelOptions()) throws(DecodeError) {
        let n = options.resolvedFFTSize
        func bad(_ message: String) -> DecodeError {
            DecodeError(kind: .invalidOptions, input: "log-mel", call: "LogMelSpectrogram", message: message)
        }
        let nyquist = Double(options.sampleRate) / 2
        let high = options.highHz ?? nyquist
        guard options.sampleRate > 0, options.window > 0, options.hop > 0 else { throw bad("sample rate, window and hop must be positive") }
        guard options.window <= 1 << 20, options.fftSize.map({ $0 > 0 && $0 <= 1 << 20 }) ?? true else {
            throw bad("window and FFT size must be at most 2^20 samples")
        }
        guard n >= options.window, n & (n - 1) == 0 else { throw bad("FFT size \(n) must be a power of two >= window \(options.window)") }
        guard options.melBands > 0 else { throw bad("mel bands must be positive") }
        guard options.lowHz >= 0, high > options.lowHz, high <= nyquist else {
            throw bad("need 0 <= lowHz < highHz <= \(nyquist) Hz, got \(options.lowHz)...\(high)")
        }
        self.options = options
        fftSize = n

        var ctx: OpaquePointer?
        var fn: av_tx_fn?
        var scale: Float = 1
        let status = av_tx_init(&ctx, &fn, AV_TX_FLOAT_RDFT, 0, Int32(n), &scale, 0)
        guard status >= 0, let ctx, let fn else { throw decodeError(status, call: "av_tx_init", input: "log-mel") }
        context = ctx
        transform = fn
        // av_malloc aligns for the CPU's SIMD, as av_tx requires without AV_TX_UNALIGNED.
        // FFmpeg 5.1's RDFT uses its buffers as scratch beyond the N inputs and N/2+1 complex
        // outputs it documents (measured: a heap overwrite with exactly n and n + 2 floats), so both
        // get room for 2N + 64 floats.
        fftIn = av_mallocz((2 * n + 64) * MemoryLayout<Float>.size)!.bindMemory(to: Float.self, capacity: 2 * n + 64)
        fftOut = av_mallocz((2 * n + 64) * MemoryLayout<Float>.size)!.bindMemory(to: Float.self, capacity: 2 * n + 64)

        window = (0..<options.window).map { k in Float(0.5 - 0.5 * cos(2 * Double.pi * Double(k) / Double(options.window))) }

        func mel(_ f: Double) -> Double { 2595 * log10(1 + f / 700) }
        func hz(_ m: Double) -> Double { 700 * (pow(10, m / 2595) - 1) }
        let lowMel = mel(options.lowHz), highMel = mel(high)
        let edges = (0...(options.melBands + 1)).map { hz(lowMel + (highMel - lowMel) * Double($0) / Double(options.melBands + 1)) }
        let bins = n / 2 + 1
        var first: [Int] = []
        var w: [[Float]] = []
        for m in 1...options.melBands {
            let lo = edges[m - 1], mid = edges[m], hi = edges[m + 1]
            var start = -1
            var row: [Float] = []
            for k in 0..<bins {
                let f = Double(k) * Double(options.sampleRate) / Double(n)
                let weight = max(0, min((f - lo) / (mid - lo), (hi - f) / (hi - mid)))
                if weight > 0 {
                    if start < 0 { start = k }
                    row.append(Float(weight))
                } else if start >= 0 {
                    break
                }
            }
            first.append(max(start, 0))
            w.append(row)
        }
        firstBin = first
        weights = w
    }

    deinit {
        av_tx_uninit(&context)
        av_free(fftIn)
        av_free(fftOut)
    }

    /// Number of frames for `sampleCount` input samples.
    public func frameCount(sampleCount: Int) -> Int {
        sampleCount < options.window ? 0 : 1 + (sampleCount - options.window) / options.hop
    }

    /// Log-mel frames of `samples`, `frameCount × melBands` values, row-major.
    public func compute(_ samples: [Float]) -> [Float] {
        let frames = frameCount(sampleCount: samples.count)
        let bands = options.melBands
        var output = [Float](repeating: 0, count: frames * bands)
        let bins = fftSize / 2 + 1
        var power = [Float](repeating: 0, count: bins)
        samples.withUnsafeBufferPointer { x in
            for i in 0..<frames {
                let offset = i * options.hop
                for k in 0..<options.window { fftIn[k] = x[offset + k] * window[k] }
                for k in options.window..<fftSize { fftIn[k] = 0 }
                // RDFT: n reals in, n/2+1 interleaved complex out; stride is one sample in bytes.
                transform(context, fftOut, fftIn, MemoryLayout<Float>.stride)
                for k in 0..<bins {
                    let re = fftOut[2 * k], im = fftOut[2 * k + 1]
                    power[k] = re * re + im * im
                }
                for m in 0..<bands {
                    var energy: Float = 0
                    let row = weights[m], start = firstBin[m]
                    for j in 0..<row.count { energy += row[j] * power[start + j] }
                    output[i * bands + m] = logf(energy + options.logOffset)
                }
            }
        }
        return output
    }
}
