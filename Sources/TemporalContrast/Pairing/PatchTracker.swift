/// Follows a square patch from frame to frame by normalised cross-correlation (NCC) template
/// matching: a coarse search at half resolution around the constant-velocity prediction, a ±2 px
/// refinement at full resolution, and a parabolic sub-pixel fit of the NCC peak.
///
/// The template is the patch's first appearance (no updating, so no drift). A track ends as lost
/// when the peak NCC falls below `minConfidence` (occlusion, strong deformation) or when the
/// predicted patch leaves the frame, so it is never followed onto the background.
public struct PatchTracker: Sendable, Equatable {
    /// Side of the tracked square in pixels at the working resolution (default 64).
    public var patchSize: Int
    /// Largest motion per frame searched, in pixels (default 16).
    public var searchRadius: Int
    /// Lowest NCC peak that still counts as found (default 0.6).
    public var minConfidence: Float

    public init(patchSize: Int = 64, searchRadius: Int = 16, minConfidence: Float = 0.6) {
        precondition(patchSize >= 8 && patchSize % 2 == 0, "PatchTracker: patch size must be even and at least 8")
        self.patchSize = patchSize
        self.searchRadius = searchRadius
        self.minConfidence = minConfidence
    }

    public struct Track: Sendable {
        /// Top-left corner of the patch, sub-pixel.
        public private(set) var x: Double
        public private(set) var y: Double
        /// Motion over the last frame, pixels.
        public private(set) var vx = 0.0, vy = 0.0
        public private(set) var confidence: Float = 1
        /// Frames since the start (0 at the first).
        public private(set) var age = 0
        public let startX: Int, startY: Int
        let template: [Float]
        let halfTemplate: [Float]

        public var centre: (x: Double, y: Double) { (x + Double(size) / 2, y + Double(size) / 2) }
        let size: Int

        mutating func moved(to nx: Double, _ ny: Double, confidence c: Float) {
            vx = nx - x
            vy = ny - y
            x = nx
            y = ny
            confidence = c
            age += 1
        }
    }

    public enum Update: Sendable, Equatable {
        case tracked
        case lost(LostReason)
    }

    public enum LostReason: String, Sendable, Equatable {
        case leftFrame = "left_frame"
        case lowConfidence = "low_confidence"
    }

    /// Starts a track on the patch at (x, y) of `image`; nil when the patch is flat or not inside.
    public func start(x: Int, y: Int, in image: GrayImage, half: GrayImage? = nil) -> Track? {
        let h = half ?? image.halved()
        guard let t = image.normalizedPatch(x: x, y: y, size: patchSize),
            let ht = h.normalizedPatch(x: x / 2, y: y / 2, size: patchSize / 2)
        else { return nil }
        return Track(x: Double(x), y: Double(y), startX: x, startY: y, template: t, halfTemplate: ht, size: patchSize)
    }

    /// Finds the patch in the next frame; on `.lost` the track should be dropped.
    public func update(_ track: inout Track, in image: GrayImage, half: GrayImage? = nil) -> Update {
        let p = patchSize
        let px = track.x + track.vx, py = track.y + track.vy
        guard px >= 0, py >= 0, px + Double(p) <= Double(image.width), py + Double(p) <= Double(image.height) else {
            return .lost(.leftFrame)
        }
        let h = half ?? image.halved()
        let coarse = search(track.halfTemplate, size: p / 2, in: h, around: (Int((px / 2).rounded()), Int((py / 2).rounded())), radius: max(1, searchRadius / 2))
        guard let c = coarse else { return .lost(.leftFrame) }
        guard let fine = search(track.template, size: p, in: image, around: (2 * c.x, 2 * c.y), radius: 2, subpixel: true) else {
            return .lost(.leftFrame)
        }
        guard fine.score >= minConfidence else { return .lost(.lowConfidence) }
        track.moved(to: fine.fx, fine.fy, confidence: fine.score)
        return .tracked
    }

    /// Best NCC of `template` over top-left positions within ±radius of `around` that keep the
    /// window inside the image.
    func search(
        _ template: [Float], size: Int, in image: GrayImage, around: (Int, Int), radius: Int, subpixel: Bool = false
    ) -> (x: Int, y: Int, score: Float, fx: Double, fy: Double)? {
        let x0 = max(0, around.0 - radius), x1 = min(image.width - size, around.0 + radius)
        let y0 = max(0, around.1 - radius), y1 = min(image.height - size, around.1 + radius)
        guard x0 <= x1, y0 <= y1 else { return nil }
        let cols = x1 - x0 + 1
        var scores = [Float](repeating: -1, count: cols * (y1 - y0 + 1))
        let n = Double(size * size)
        var best = (x: x0, y: y0, score: Float(-2))
        template.withUnsafeBufferPointer { t in
            image.values.withUnsafeBufferPointer { img in
                for oy in y0...y1 {
                    for ox in x0...x1 {
                        let (s, q) = image.windowSums(x: ox, y: oy, size: size)
                        let variance = q - s * s / n
                        guard variance > n * 1e-3 else { continue }
                        var dot: Float = 0
                        for r in 0..<size {
                            let row = img.baseAddress! + (oy + r) * image.width + ox, trow = t.baseAddress! + r * size
                            var acc: Float = 0
                            for c in 0..<size { acc += trow[c] * row[c] }
                            dot += acc
                        }
                        // The template has zero mean, so the window's mean cancels in the numerator.
                        let score = Float(Double(dot) / variance.squareRoot())
                        scores[(oy - y0) * cols + (ox - x0)] = score
                        if score > best.score { best = (ox, oy, score) }
                    }
                }
            }
        }
        guard best.score > -2 else { return nil }
        var fx = Double(best.x), fy = Double(best.y)
        if subpixel {
            func peak(_ l: Float, _ c: Float, _ r: Float) -> Double {
                let d = Double(l - 2 * c + r)
                return d < 0 ? max(-0.5, min(0.5, Double(l - r) / (2 * d))) : 0
            }
            let i = (best.y - y0) * cols + (best.x - x0)
            if best.x > x0 && best.x < x1 { fx += peak(scores[i - 1], scores[i], scores[i + 1]) }
            if best.y > y0 && best.y < y1 { fy += peak(scores[i - cols], scores[i], scores[i + cols]) }
        }
        return (best.x, best.y, best.score, fx, fy)
    }
}

/// Chooses where to start tracks: the grid cell (stride = half a patch) with the most motion
/// (mean |Δ| against the previous frame) times texture (mean gradient magnitude), above both
/// thresholds, not overlapping patches already tracked.
public struct PatchSelector: Sendable, Equatable {
    public var minMotion: Float
    public var minTexture: Float

    public init(minMotion: Float = 2, minTexture: Float = 4) {
        self.minMotion = minMotion
        self.minTexture = minTexture
    }

    public func select(previous: GrayImage, current: GrayImage, patch: Int, avoiding taken: [(x: Int, y: Int)]) -> (x: Int, y: Int)? {
        let w = current.width, h = current.height
        guard previous.width == w, previous.height == h, w >= patch, h >= patch else { return nil }
        var motion = [Float](repeating: 0, count: w * h), texture = motion
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                motion[i] = abs(current.values[i] - previous.values[i])
                let gx = x + 1 < w ? abs(current.values[i + 1] - current.values[i]) : 0
                let gy = y + 1 < h ? abs(current.values[i + w] - current.values[i]) : 0
                texture[i] = gx + gy
            }
        }
        let m = GrayImage(width: w, height: h, values: motion), t = GrayImage(width: w, height: h, values: texture)
        let stride = max(1, patch / 2), area = Double(patch * patch)
        var best: (x: Int, y: Int, score: Float)?
        var y = 0
        while y + patch <= h {
            var x = 0
            while x + patch <= w {
                let overlaps = taken.contains { abs($0.x - x) < patch && abs($0.y - y) < patch }
                if !overlaps {
                    let mm = Float(m.windowSums(x: x, y: y, size: patch).0 / area), tt = Float(t.windowSums(x: x, y: y, size: patch).0 / area)
                    if mm >= minMotion && tt >= minTexture && mm * tt > (best?.score ?? 0) { best = (x, y, mm * tt) }
                }
                x += stride
            }
            y += stride
        }
        return best.map { ($0.x, $0.y) }
    }
}
