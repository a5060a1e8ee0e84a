import Glibc

/// The SimCLR/BYOL image augmentations, applied independently to each view and deterministic for a
/// given `RandomSource` state: random resized crop (the most important), horizontal flip, colour
/// jitter (brightness, contrast, saturation, hue), random grayscale, Gaussian blur; then per-channel
/// normalisation. Output: `outputSize × outputSize × 3` Float32, NHWC, ready for the encoder.
public struct ImageAugmentation: Sendable, Codable, Equatable {
    public var outputSize = 64
    /// Crop area as a fraction of the frame, and aspect-ratio range (width / height).
    public var cropScale: ClosedRange<Float> = 0.2...1.0
    public var cropRatio: ClosedRange<Float> = 0.75...(4.0 / 3.0)
    public var flipProbability: Float = 0.5
    public var jitterProbability: Float = 0.8
    public var brightness: Float = 0.4
    public var contrast: Float = 0.4
    /// Strong colour distortion (saturation 0.8, hue ±0.5, grayscale 0.5): with the milder BYOL-style
    /// values (0.4, 0.1, 0.2) the encoder told clips apart by their colours, and a linear probe on the
    /// labelled samples scored 0.44–0.47 after 2000–4000 steps; with these, 0.59 (README, "Downstream").
    public var saturation: Float = 0.8
    /// Hue shift as a fraction of the colour wheel (±).
    public var hue: Float = 0.5
    public var grayscaleProbability: Float = 0.5
    public var blurProbability: Float = 0.5
    public var blurSigma: ClosedRange<Float> = 0.1...2.0
    /// Per-channel normalisation after scaling pixels to [0, 1] (ImageNet statistics).
    public var mean: [Float] = [0.485, 0.456, 0.406]
    public var std: [Float] = [0.229, 0.224, 0.225]

    public init() {}

    /// The normalisation this applies last (only `side`, `mean` and `std` of it matter here).
    private var normalization: EncoderInput.Video { EncoderInput.Video(decodeShortSide: 0, fps: 0, side: outputSize, mean: mean, std: std) }

    public struct CropBox: Sendable, Equatable {
        public var x: Int, y: Int, width: Int, height: Int

        public init(x: Int, y: Int, width: Int, height: Int) {
            self.x = x
            self.y = y
            self.width = width
            self.height = height
        }
    }

    /// A crop box inside a `width × height` frame, sampled like torchvision's RandomResizedCrop
    /// (ten tries, then the largest centred box of an allowed ratio).
    public func cropBox(width: Int, height: Int, rng: inout RandomSource) -> CropBox {
        let area = Float(width * height)
        for _ in 0..<10 {
            let target = area * rng.uniform(cropScale.lowerBound, cropScale.upperBound)
            let logRatio = rng.uniform(logf(cropRatio.lowerBound), logf(cropRatio.upperBound))
            let ratio = expf(logRatio)
            let w = Int((target * ratio).squareRoot().rounded()), h = Int((target / ratio).squareRoot().rounded())
            if w > 0, h > 0, w <= width, h <= height {
                return CropBox(x: rng.index(below: width - w + 1), y: rng.index(below: height - h + 1), width: w, height: h)
            }
        }
        let frameRatio = Float(width) / Float(height)
        var w = width, h = height
        if frameRatio < cropRatio.lowerBound { h = Int((Float(w) / cropRatio.lowerBound).rounded()) }
        else if frameRatio > cropRatio.upperBound { w = Int((Float(h) * cropRatio.upperBound).rounded()) }
        return CropBox(x: (width - w) / 2, y: (height - h) / 2, width: w, height: h)
    }

    /// Bilinear resize of `box` of an RGB24 view to `size × size`, values in [0, 1].
    public static func resizedCrop(_ view: ImageView, box: CropBox, size: Int) -> [Float] {
        var out = [Float](repeating: 0, count: size * size * 3)
        let sx = Float(box.width) / Float(size), sy = Float(box.height) / Float(size)
        view.pixels.withUnsafeBufferPointer { p in
            for oy in 0..<size {
                let fy = max(0, min(Float(box.height - 1), (Float(oy) + 0.5) * sy - 0.5))
                let y0 = Int(fy), y1 = min(y0 + 1, box.height - 1), wy = fy - Float(y0)
                for ox in 0..<size {
                    let fx = max(0, min(Float(box.width - 1), (Float(ox) + 0.5) * sx - 0.5))
                    let x0 = Int(fx), x1 = min(x0 + 1, box.width - 1), wx = fx - Float(x0)
                    let r0 = ((box.y + y0) * view.width + box.x) * 3, r1 = ((box.y + y1) * view.width + box.x) * 3
                    for c in 0..<3 {
                        let a = Float(p[r0 + x0 * 3 + c]), b = Float(p[r0 + x1 * 3 + c])
                        let d = Float(p[r1 + x0 * 3 + c]), e = Float(p[r1 + x1 * 3 + c])
                        let top = a + (b - a) * wx, bottom = d + (e - d) * wx
                        out[(oy * size + ox) * 3 + c] = (top + (bottom - top) * wy) * (1 / 255)
                    }
                }
            }
        }
        return out
    }

    /// Mirrors an NHWC `size × size × 3` image left to right.
    public static func flipped(_ image: [Float], size: Int) -> [Float] {
        var out = image
        for y in 0..<size { for x in 0..<size { for c in 0..<3 {
            out[(y * size + x) * 3 + c] = image[(y * size + size - 1 - x) * 3 + c]
        } } }
        return out
    }

    /// One augmented, normalised view of `view`.
    public func apply(_ view: ImageView, rng: inout RandomSource) -> [Float] {
        let size = outputSize
        var img = Self.resizedCrop(view, box: cropBox(width: view.width, height: view.height, rng: &rng), size: size)
        if rng.uniform() < flipProbability { img = Self.flipped(img, size: size) }
        if rng.uniform() < jitterProbability { jitter(&img, rng: &rng) }
        if rng.uniform() < grayscaleProbability { toGray(&img) }
        if rng.uniform() < blurProbability { blur(&img, size: size, sigma: rng.uniform(blurSigma.lowerBound, blurSigma.upperBound)) }
        normalization.normalize(&img)
        return img
    }

    private func jitter(_ img: inout [Float], rng: inout RandomSource) {
        let n = img.count / 3
        let b = rng.uniform(max(0, 1 - brightness), 1 + brightness)
        let k = rng.uniform(max(0, 1 - contrast), 1 + contrast)
        let s = rng.uniform(max(0, 1 - saturation), 1 + saturation)
        let h = rng.uniform(-hue, hue)
        var meanGray: Float = 0
        for i in 0..<n { meanGray += 0.299 * img[3 * i] + 0.587 * img[3 * i + 1] + 0.114 * img[3 * i + 2] }
        meanGray = meanGray * b / Float(n)
        // Hue: a rotation of the chroma plane in YIQ space, folded into one 3×3 matrix with the
        // saturation blend (towards luma) so each pixel costs one matrix product.
        let theta = 2 * Float.pi * h, (cs, sn) = (cosf(theta), sinf(theta))
        let toYIQ: [Float] = [0.299, 0.587, 0.114, 0.596, -0.274, -0.322, 0.211, -0.523, 0.312]
        let toRGB: [Float] = [1, 0.956, 0.621, 1, -0.272, -0.647, 1, -1.106, 1.703]
        let rotate: [Float] = [1, 0, 0, 0, s * cs, -s * sn, 0, s * sn, s * cs]
        let m = Self.product(toRGB, Self.product(rotate, toYIQ))
        for i in 0..<n {
            let r = img[3 * i] * b, g = img[3 * i + 1] * b, bl = img[3 * i + 2] * b
            for c in 0..<3 {
                let v = m[c * 3] * r + m[c * 3 + 1] * g + m[c * 3 + 2] * bl
                img[3 * i + c] = min(1, max(0, (v - meanGray) * k + meanGray))
            }
        }
    }

    private func toGray(_ img: inout [Float]) {
        for i in 0..<(img.count / 3) {
            let g = 0.299 * img[3 * i] + 0.587 * img[3 * i + 1] + 0.114 * img[3 * i + 2]
            img[3 * i] = g
            img[3 * i + 1] = g
            img[3 * i + 2] = g
        }
    }

    /// Separable Gaussian blur with radius ⌈2σ⌉, edges clamped.
    private func blur(_ img: inout [Float], size: Int, sigma: Float) {
        let radius = max(1, Int((2 * sigma).rounded(.up)))
        var kernel = (-radius...radius).map { expf(-Float($0 * $0) / (2 * sigma * sigma)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        var tmp = img
        for pass in 0..<2 {
            let src = pass == 0 ? img : tmp
            var dst = src
            for y in 0..<size {
                for x in 0..<size {
                    for c in 0..<3 {
                        var acc: Float = 0
                        for (j, w) in kernel.enumerated() {
                            let d = j - radius
                            let (sx, sy) = pass == 0 ? (min(size - 1, max(0, x + d)), y) : (x, min(size - 1, max(0, y + d)))
                            acc += w * src[(sy * size + sx) * 3 + c]
                        }
                        dst[(y * size + x) * 3 + c] = acc
                    }
                }
            }
            if pass == 0 { tmp = dst } else { img = dst }
        }
    }

    /// The 3×3 matrix product a·b (row-major).
    static func product(_ a: [Float], _ b: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: 9)
        for r in 0..<3 {
            for c in 0..<3 {
                var sum: Float = 0
                for k in 0..<3 { sum += a[r * 3 + k] * b[k * 3 + c] }
                out[r * 3 + c] = sum
            }
        }
        return out
    }
}

/// Audio augmentations on a log-mel window: a random gain of ±`gainDecibels` (an additive shift of
/// log power), and optional SpecAugment-style masks of mel bands and time steps (off by default).
/// Small time shifts come from the audio-video pairer's jitter.
public struct AudioAugmentation: Sendable, Codable, Equatable {
    public var gainDecibels: Float = 6
    public var frequencyMasks = 0
    public var frequencyMaskWidth = 8
    public var timeMasks = 0
    public var timeMaskWidth = 10

    public init() {}

    /// One augmented copy of `mel` (`frames × bands`); masked cells take the window's mean.
    public func apply(_ mel: MelView, rng: inout RandomSource) -> [Float] {
        let shift = rng.uniform(-gainDecibels, gainDecibels) / 10 * logf(10)
        var out = mel.values.map { $0 + shift }
        guard frequencyMasks > 0 || timeMasks > 0, !out.isEmpty else { return out }
        let fill = out.reduce(0, +) / Float(out.count)
        for _ in 0..<frequencyMasks {
            let w = rng.index(below: frequencyMaskWidth + 1), f0 = rng.index(below: max(1, mel.bands - w + 1))
            for t in 0..<mel.frames { for f in f0..<min(mel.bands, f0 + w) { out[t * mel.bands + f] = fill } }
        }
        for _ in 0..<timeMasks {
            let w = rng.index(below: timeMaskWidth + 1), t0 = rng.index(below: max(1, mel.frames - w + 1))
            for t in t0..<min(mel.frames, t0 + w) { for f in 0..<mel.bands { out[t * mel.bands + f] = fill } }
        }
        return out
    }
}
