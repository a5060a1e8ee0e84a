/// A luminance image (0–255, Float) with integral images of values and squares, so any window's
/// sum and sum of squares cost four lookups (the NCC denominator).
public struct GrayImage: Sendable {
    public let width: Int
    public let height: Int
    public let values: [Float]
    /// (width + 1) × (height + 1) prefix sums, in Double so large frames stay exact enough.
    let integral: [Double]
    let integralSquares: [Double]

    public init(width: Int, height: Int, values: [Float]) {
        precondition(values.count == width * height)
        self.width = width
        self.height = height
        self.values = values
        var s = [Double](repeating: 0, count: (width + 1) * (height + 1)), q = s
        let stride = width + 1
        for y in 0..<height {
            var rowSum: Double = 0, rowSquares: Double = 0
            for x in 0..<width {
                let v = Double(values[y * width + x])
                rowSum += v
                rowSquares += v * v
                s[(y + 1) * stride + x + 1] = s[y * stride + x + 1] + rowSum
                q[(y + 1) * stride + x + 1] = q[y * stride + x + 1] + rowSquares
            }
        }
        integral = s
        integralSquares = q
    }

    /// Rec. 601 luma of an RGB24 frame.
    public init(rgb pixels: [UInt8], width: Int, height: Int) {
        var v = [Float](repeating: 0, count: width * height)
        for i in 0..<(width * height) {
            v[i] = 0.299 * Float(pixels[3 * i]) + 0.587 * Float(pixels[3 * i + 1]) + 0.114 * Float(pixels[3 * i + 2])
        }
        self.init(width: width, height: height, values: v)
    }

    /// Half resolution by 2×2 averaging (odd edges dropped).
    public func halved() -> GrayImage {
        let w = width / 2, h = height / 2
        var v = [Float](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let i = 2 * y * width + 2 * x
                v[y * w + x] = 0.25 * (values[i] + values[i + 1] + values[i + width] + values[i + width + 1])
            }
        }
        return GrayImage(width: w, height: h, values: v)
    }

    /// Sum and sum of squares of the `size`×`size` window with top-left (x, y).
    func windowSums(x: Int, y: Int, size: Int) -> (Double, Double) {
        let stride = width + 1
        let a = y * stride + x, b = a + size, c = (y + size) * stride + x, d = c + size
        return (integral[d] - integral[b] - integral[c] + integral[a],
                integralSquares[d] - integralSquares[b] - integralSquares[c] + integralSquares[a])
    }

    /// The `size`×`size` window at (x, y) as zero-mean, unit-norm values (an NCC template).
    func normalizedPatch(x: Int, y: Int, size: Int) -> [Float]? {
        guard x >= 0, y >= 0, x + size <= width, y + size <= height else { return nil }
        let (s, q) = windowSums(x: x, y: y, size: size)
        let n = Double(size * size)
        let variance = q - s * s / n
        guard variance > n * 1e-3 else { return nil }
        let mean = Float(s / n), scale = Float(1 / variance.squareRoot())
        var t = [Float](repeating: 0, count: size * size)
        for r in 0..<size { for c in 0..<size { t[r * size + c] = (values[(y + r) * width + x + c] - mean) * scale } }
        return t
    }
}
