import Foundation
import Testing
import TemporalContrast

/// Generated video with ground truth: a textured 32×32 object moving over a textured background.
struct MovingObjectVideo {
    static let size = 128
    var rng: RandomSource
    let background: [Float]
    let object: [Float]
    let objectSize = 32

    init(seed: UInt64) {
        rng = RandomSource(seed: seed)
        var bg = [Float](repeating: 0, count: Self.size * Self.size)
        let (a, b, c) = (rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.3), rng.uniform(0, 6))
        for y in 0..<Self.size { for x in 0..<Self.size {
            let wave: Float = sin(a * Float(x) + c) * cos(b * Float(y))
            bg[y * Self.size + x] = 110 + 40 * wave + rng.normal() * 12
        } }
        background = bg
        var obj = [Float](repeating: 0, count: 32 * 32)
        for i in 0..<(32 * 32) { obj[i] = rng.uniform(0, 1) < 0.5 ? 30 + rng.uniform(0, 40) : 190 + rng.uniform(0, 50) }
        object = obj
    }

    /// The frame with the object's top-left at (x, y) (parts outside are clipped), an optional
    /// occluding square, and Gaussian noise of `noise` grey levels.
    mutating func frame(x: Int, y: Int, noise: Float, occluder: (x: Int, y: Int, size: Int)? = nil) -> GrayImage {
        var v = background
        for r in 0..<objectSize { for c in 0..<objectSize {
            let (fx, fy) = (x + c, y + r)
            if fx >= 0, fy >= 0, fx < Self.size, fy < Self.size { v[fy * Self.size + fx] = object[r * objectSize + c] }
        } }
        if let o = occluder {
            for r in 0..<o.size { for c in 0..<o.size where o.y + r < Self.size && o.x + c < Self.size {
                let stripe: Float = sin(Float(r + c) * 0.9)
                v[(o.y + r) * Self.size + o.x + c] = 128 + 60 * stripe
            } }
        }
        if noise > 0 { for i in v.indices { v[i] += rng.normal() * noise } }
        return GrayImage(width: Self.size, height: Self.size, values: v)
    }
}

@Suite("Patch tracker on generated video with ground truth")
struct TrackerTests {
    @Test("mean centre error ≤ 2 px over 25 frames, with and without noise", arguments: [Float(0), 8, 16])
    func accuracy(noise: Float) throws {
        var video = MovingObjectVideo(seed: 11)
        let tracker = PatchTracker(patchSize: 32, searchRadius: 12)
        // A curved path: constant velocity would flatter the motion model.
        let path = (0..<25).map { i -> (Int, Int) in
            let dx: Double = 2.6 * Double(i), dy: Double = 18 * sin(Double(i) * 0.25)
            return (16 + Int(dx.rounded()), 40 + Int(dy.rounded()))
        }
        var track = try #require(tracker.start(x: path[0].0, y: path[0].1, in: video.frame(x: path[0].0, y: path[0].1, noise: noise)))
        var errors: [Double] = []
        for (x, y) in path.dropFirst() {
            let update = tracker.update(&track, in: video.frame(x: x, y: y, noise: noise))
            #expect(update == .tracked)
            let (cx, cy) = track.centre
            errors.append(((cx - Double(x + 16)) * (cx - Double(x + 16)) + (cy - Double(y + 16)) * (cy - Double(y + 16))).squareRoot())
        }
        let mean = errors.reduce(0, +) / Double(errors.count)
        #expect(errors.count == 24)
        #expect(mean <= 2, "mean centre error \(mean) px at noise \(noise)")
        #expect(track.confidence > 0.6)
    }

    @Test("an object leaving the frame ends the track as lost, never followed onto the background")
    func leavesFrame() throws {
        var video = MovingObjectVideo(seed: 12)
        let tracker = PatchTracker(patchSize: 32, searchRadius: 12)
        var x = 60
        var track = try #require(tracker.start(x: x, y: 50, in: video.frame(x: x, y: 50, noise: 4)))
        var outcome: PatchTracker.Update = .tracked
        for _ in 0..<25 {
            x += 5
            outcome = tracker.update(&track, in: video.frame(x: x, y: 50, noise: 4))
            guard outcome == .tracked else { break }
            // While it reports the object, it is on the object.
            #expect(abs(track.centre.x - Double(x + 16)) <= 2 && abs(track.centre.y - 66) <= 2)
        }
        #expect(outcome == .lost(.leftFrame) || outcome == .lost(.lowConfidence))
        #expect(x < 128, "lost before the object was entirely gone (x = \(x))")
    }

    @Test("an occluded object ends the track as lost")
    func occlusion() throws {
        var video = MovingObjectVideo(seed: 13)
        let tracker = PatchTracker(patchSize: 32, searchRadius: 12)
        var track = try #require(tracker.start(x: 20, y: 40, in: video.frame(x: 20, y: 40, noise: 4)))
        for i in 1..<8 { #expect(tracker.update(&track, in: video.frame(x: 20 + 2 * i, y: 40, noise: 4)) == .tracked) }
        let hidden = video.frame(x: 36, y: 40, noise: 4, occluder: (x: 28, y: 32, size: 48))
        #expect(tracker.update(&track, in: hidden) == .lost(.lowConfidence))
    }

    @Test("the selector picks the moving textured patch, not the static background or a flat mover")
    func selection() {
        var video = MovingObjectVideo(seed: 14)
        let a = video.frame(x: 70, y: 60, noise: 0), b = video.frame(x: 74, y: 62, noise: 0)
        let chosen = PatchSelector().select(previous: a, current: b, patch: 32, avoiding: [])
        #expect(chosen != nil)
        if let c = chosen { #expect(abs(c.x + 16 - (74 + 16)) <= 16 && abs(c.y + 16 - (62 + 16)) <= 16, "chose \(c)") }
        #expect(PatchSelector().select(previous: a, current: a, patch: 32, avoiding: []) == nil)
    }
}
