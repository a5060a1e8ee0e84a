import Foundation
import Testing
import TemporalContrast

/// A frame whose pixels are a flat colour (enough for sampler and buffer tests).
func flatFrame(source: Int = 0, segment: Int, time: Double, value: UInt8 = 100, width: Int = 16, height: Int = 12) -> TimedFrame {
    TimedFrame(source: source, segment: segment, time: time, width: width, height: height, pixels: [UInt8](repeating: value, count: width * height * 3))
}

@Suite("Pairing: temporal sampler, audio-video, replay buffer, augmentation")
struct PairingTests {
    /// A random timeline with irregular spacing, gaps and timestamp resets (each reset or gap
    /// starts a new segment, as the decoder reports).
    static func randomTimeline(_ rng: inout RandomSource) -> [TimedFrame] {
        var frames: [TimedFrame] = []
        var t = Double(rng.uniform(0, 5)), segment = 0
        for _ in 0..<400 {
            let u = rng.uniform()
            if u < 0.02 {
                segment += 1
                t = Double(rng.uniform(0, 3))  // reset: time starts again
            } else if u < 0.04 {
                segment += 1
                t += Double(rng.uniform(6, 30))  // gap
            } else {
                t += Double(rng.uniform(0.01, 0.2))
            }
            frames.append(flatFrame(segment: segment, time: t))
        }
        return frames
    }

    @Test("temporal sampler: positives within ±near, negatives beyond far, never across a segment (random timelines)")
    func temporalProperties() {
        var rng = RandomSource(seed: 21)
        let sampler = TemporalPairSampler(near: 0.5, far: 10)
        for _ in 0..<20 {
            let frames = Self.randomTimeline(&rng)
            for anchor in stride(from: 0, to: frames.count, by: 7) {
                let a = frames[anchor]
                let hasCandidate = frames.contains { $0.segment == a.segment && $0.time != a.time && abs($0.time - a.time) <= 0.5 }
                if let p = sampler.positive(for: anchor, in: frames, rng: &rng) {
                    #expect(frames[p].segment == a.segment)
                    #expect(abs(frames[p].time - a.time) <= 0.5 && frames[p].time != a.time)
                } else {
                    #expect(!hasCandidate, "a positive existed but none was returned")
                }
                for n in sampler.negatives(for: anchor, in: frames, count: 5, rng: &rng) {
                    #expect(frames[n].segment == a.segment && abs(frames[n].time - a.time) > 10)
                }
            }
        }
    }

    @Test("the timeline forgets old segments and history beyond its horizon")
    func timeline() {
        var t = SourceTimeline(source: 0, horizon: 2)
        for i in 0..<50 { t.append(flatFrame(segment: 0, time: Double(i) * 0.1)) }
        #expect(t.frames.first!.time >= 4.9 - 2 - 1e-9)
        t.append(flatFrame(segment: 1, time: 0))
        #expect(t.frames.count == 1 && t.frames[0].segment == 1)
    }

    /// Mel chunks whose every value is the time of its own mel frame.
    static func clockMel(source: Int = 0, segment: Int = 0, from start: Double, frames: Int, hop: Double = 0.01, bands: Int = 4) -> MelChunk {
        var values: [Float] = []
        for i in 0..<frames { values += [Float](repeating: Float(start + Double(i) * hop), count: bands) }
        return MelChunk(source: source, segment: segment, time: start, hop: hop, bands: bands, values: values)
    }

    @Test("audio-video pairs are synchronous within the jitter; video-only sources give none")
    func audioVideoSync() {
        var config = PairingConfig()
        config.audioWindow = 1
        config.audioJitter = 0.1
        config.audioVideoPerSecond = 10
        var stage = PairingStage(source: 0, config: config, seed: 5)
        var pairs: [TrainingExample] = []
        for step in 0..<100 {
            let t = Double(step) * 0.04
            stage.ingest(Self.clockMel(from: t, frames: 4))
            pairs += stage.ingest(flatFrame(segment: 0, time: t)).filter { $0.kind == .audioVideo }
        }
        #expect(pairs.count > 20)
        for p in pairs {
            let mel = p.audio!
            #expect(mel.frames == 100)
            // The window's own clock: its middle is within jitter (+ one hop of rounding) of the frame.
            let middle = Double(mel.values[(mel.frames / 2) * mel.bands])
            #expect(abs(middle - p.origin.time) <= 0.1 + 0.011, "window centred at \(middle) for a frame at \(p.origin.time)")
            #expect(abs(p.positiveTime - p.origin.time) <= 0.1)
        }
        var silent = PairingStage(source: 1, config: config, seed: 5)
        var count = 0
        for step in 0..<100 { count += silent.ingest(flatFrame(source: 1, segment: 0, time: Double(step) * 0.04)).filter { $0.kind == .audioVideo }.count }
        #expect(count == 0)
    }

    @Test("audio windows never span a gap or another segment")
    func audioGaps() {
        var timeline = SourceTimeline(source: 0, horizon: 12)
        timeline.append(Self.clockMel(from: 0, frames: 150))
        timeline.append(Self.clockMel(from: 3, frames: 150))  // a gap of 1.5 s: history restarts at 3 s
        #expect(timeline.melWindow(start: 0.2, frames: 100, segment: 0) == nil)
        #expect(timeline.melWindow(start: 3.2, frames: 100, segment: 0) != nil)
        #expect(timeline.melWindow(start: 3.2, frames: 100, segment: 1) == nil)
    }

    static func example(_ frame: TimedFrame, kind: PairKind = .temporal) -> TrainingExample {
        let view = ImageView(width: frame.width, height: frame.height, pixels: frame.pixels)
        return TrainingExample(kind: kind, anchor: view, positive: view, audio: nil, origin: frame.origin, positiveTime: frame.time)
    }

    @Test("the replay buffer stays within its byte bound and keeps the few distinct frames among many copies")
    func replayBuffer() {
        var rng = RandomSource(seed: 31)
        let w = 16, h = 12
        func textured(_ seed: UInt64) -> [UInt8] {
            var r = RandomSource(seed: seed)
            return (0..<(w * h * 3)).map { _ in UInt8(r.index(below: 256)) }
        }
        let repeated = textured(1)
        let distinct = (0..<10).map { textured(100 + UInt64($0)) }
        let perExample = Self.example(flatFrame(segment: 0, time: 0)).byteCount
        var buffer = ReplayBuffer(byteLimit: perExample * 30)
        var t = 0.0
        for i in 0..<300 {
            // Near-identical copies (a static camera, small sensor noise), with a distinct frame every 30.
            var pixels = repeated
            for _ in 0..<5 { pixels[rng.index(below: pixels.count)] ^= 1 }
            if i % 30 == 7 { pixels = distinct[i / 30] }
            buffer.insert(Self.example(TimedFrame(source: 0, segment: 0, time: t, width: w, height: h, pixels: pixels)))
            t += 0.04
            #expect(buffer.byteCount <= buffer.byteLimit)
        }
        #expect(buffer.count == 30 && buffer.inserted == 300 && buffer.evicted == 270)
        let kept = Set(buffer.examples.map(\.anchor.pixels))
        for d in distinct { #expect(kept.contains(d), "a distinct frame was evicted") }
    }

    @Test("a FIFO replay buffer keeps the newest examples; restored as MinRed it keeps the distinct ones among what it holds")
    func replayFIFO() throws {
        let w = 16, h = 12
        func textured(_ seed: UInt64) -> [UInt8] {
            var r = RandomSource(seed: seed)
            return (0..<(w * h * 3)).map { _ in UInt8(r.index(below: 256)) }
        }
        func example(_ pixels: [UInt8], _ i: Int) -> TrainingExample {
            Self.example(TimedFrame(source: 0, segment: 0, time: Double(i) * 0.04, width: w, height: h, pixels: pixels))
        }
        let repeated = textured(1)
        var rng = RandomSource(seed: 3)
        func copy() -> [UInt8] {
            var pixels = repeated
            for _ in 0..<5 { pixels[rng.index(below: pixels.count)] ^= 1 }
            return pixels
        }
        let limit = example(repeated, 0).byteCount * 30
        var fifo = ReplayBuffer(byteLimit: limit, policy: .fifo)
        var inserted: [[UInt8]] = []
        for i in 0..<100 {
            let pixels = i % 10 == 3 ? textured(100 + UInt64(i)) : copy()
            inserted.append(pixels)
            fifo.insert(example(pixels, i))
        }
        #expect(fifo.count == 30 && fifo.evicted == 70)
        // Exactly the newest 30, distinct or not.
        #expect(Set(fifo.examples.map(\.anchor.pixels)) == Set(inserted.suffix(30)))

        var file = SafeTensors()
        fifo.save(into: &file)
        var minred = try #require(try ReplayBuffer(restoring: try SafeTensors(data: file.serialized()), byteLimit: limit, policy: .minred))
        #expect(minred.policy == .minred && minred.count == 30)
        let distinct = inserted.suffix(30).enumerated().filter { (70 + $0.offset) % 10 == 3 }.map(\.element)
        for i in 100..<160 { minred.insert(example(copy(), i)) }
        let kept = Set(minred.examples.map(\.anchor.pixels))
        #expect(distinct.count == 3)
        for d in distinct { #expect(kept.contains(d), "MinRed evicted a distinct frame that FIFO had kept") }
    }

    @Test("the replay buffer survives a checkpoint: after a round trip through safetensors bytes it evicts and samples exactly as the original")
    func replayBufferRoundTrip() throws {
        var rng = RandomSource(seed: 77)
        func random(_ source: Int, _ i: Int) -> TrainingExample {
            var r = RandomSource(seed: UInt64(source * 1_000 + i))
            let pixels = (0..<(16 * 12 * 3)).map { _ in UInt8(r.index(below: 256)) }
            let frame = TimedFrame(source: source, segment: 0, time: Double(i) * 0.1 + 1e-9 * Double(source), width: 16, height: 12, pixels: pixels)
            var e = Self.example(frame, kind: [PairKind.temporal, .tracked, .audioVideo][i % 3])
            if e.kind == .audioVideo {
                e.positive = nil
                e.audio = MelView(frames: 5, bands: 4, values: (0..<20).map { _ in r.uniform(-80, 0) })
            }
            return e
        }
        let limit = random(0, 0).byteCount * 25
        var original = ReplayBuffer(byteLimit: limit)
        for i in 0..<40 { original.insert(random(i % 3, i)) }
        original.grant(37, cap: 100)
        _ = original.sample(10, mix: PairMix(), rng: &rng, maxUses: 2)
        var file = SafeTensors()
        original.save(into: &file)
        #expect(file["replay.pixels"]?.dtype == .u8)
        let parsed = try SafeTensors(data: file.serialized())
        var restored = try #require(try ReplayBuffer(restoring: parsed, byteLimit: limit))
        #expect(restored.count == original.count && restored.byteCount == original.byteCount)
        #expect(restored.inserted == original.inserted && restored.evicted == original.evicted)
        #expect(restored.credit == 27 && original.credit == 27)
        #expect(restored.available(maxUses: 1) == original.available(maxUses: 1))
        var rngA = rng, rngB = rng
        for i in 40..<70 {
            original.insert(random(i % 4, i))
            restored.insert(random(i % 4, i))
            let a = original.sample(8, mix: PairMix(), rng: &rngA, maxUses: 2)
            let b = restored.sample(8, mix: PairMix(), rng: &rngB, maxUses: 2)
            #expect(a.map(\.anchor) == b.map(\.anchor) && a.map(\.audio) == b.map(\.audio) && a.map(\.origin) == b.map(\.origin))
        }
        #expect(original.examples.map(\.anchor) == restored.examples.map(\.anchor))
        #expect(try ReplayBuffer(restoring: SafeTensors(), byteLimit: limit) == nil)
        var damaged = parsed
        damaged.set("replay.pixels", shape: [3], bytes: [1, 2, 3])
        #expect(throws: ReplayBuffer.RestoreError.self) { try ReplayBuffer(restoring: damaged, byteLimit: limit) }
    }

    @Test("the replay credit grows by what producers grant up to its cap, draws spend it, and it never goes below zero")
    func replayCredit() {
        var buffer = ReplayBuffer(byteLimit: 64 << 20)
        var rng = RandomSource(seed: 5)
        for i in 0..<12 {
            var r = RandomSource(seed: UInt64(i))
            let pixels = (0..<(16 * 12 * 3)).map { _ in UInt8(r.index(below: 256)) }
            buffer.insert(Self.example(TimedFrame(source: 0, segment: 0, time: Double(i), width: 16, height: 12, pixels: pixels)))
        }
        #expect(buffer.credit == 0)
        buffer.grant(8, cap: 20)
        buffer.grant(8, cap: 20)
        buffer.grant(8, cap: 20)
        #expect(buffer.credit == 20)
        _ = buffer.sample(6, mix: PairMix(), rng: &rng)
        #expect(buffer.credit == 14)
        buffer.grant(100, cap: 10)  // a smaller cap never takes away what was granted
        #expect(buffer.credit == 14)
        _ = buffer.sample(10, mix: PairMix(), rng: &rng)
        _ = buffer.sample(10, mix: PairMix(), rng: &rng)
        #expect(buffer.credit == 0)
    }

    @Test("batches follow the kind mix, hand missing kinds' share to the others, and spread across sources")
    func batchMix() {
        #expect(PairMix().counts(total: 8, available: [.temporal, .tracked, .audioVideo]) == [.temporal: 4, .tracked: 2, .audioVideo: 2])
        #expect(PairMix().counts(total: 9, available: [.temporal, .tracked]) == [.temporal: 6, .tracked: 3])
        var buffer = ReplayBuffer(byteLimit: 64 << 20)
        var rng = RandomSource(seed: 4)
        for source in 0..<4 {
            for i in 0..<20 {
                var r = RandomSource(seed: UInt64(source * 100 + i))
                let pixels = (0..<(16 * 12 * 3)).map { _ in UInt8(r.index(below: 256)) }
                let frame = TimedFrame(source: source, segment: 0, time: Double(i), width: 16, height: 12, pixels: pixels)
                buffer.insert(Self.example(frame, kind: i % 2 == 0 ? .temporal : .tracked))
            }
        }
        let batch = buffer.sample(16, mix: PairMix(), rng: &rng)
        #expect(batch.count == 16)
        #expect(batch.filter { $0.kind == .temporal }.count == 11 && batch.filter { $0.kind == .tracked }.count == 5)
        #expect(Set(batch.map(\.origin.source)).count >= 3)
    }

    @Test("augmentations: same seed, same output; crops inside the frame; flip twice is identity")
    func augmentation() {
        var pixelRNG = RandomSource(seed: 7)
        let view = ImageView(width: 40, height: 30, pixels: (0..<(40 * 30 * 3)).map { _ in UInt8(pixelRNG.index(below: 256)) })
        let aug = ImageAugmentation()
        var r1 = RandomSource(seed: 9), r2 = RandomSource(seed: 9), r3 = RandomSource(seed: 10)
        let a = aug.apply(view, rng: &r1), b = aug.apply(view, rng: &r2), c = aug.apply(view, rng: &r3)
        #expect(a == b)
        #expect(a != c)
        #expect(a.count == 64 * 64 * 3 && a.allSatisfy(\.isFinite))
        var rng = RandomSource(seed: 11)
        for _ in 0..<500 {
            let w = 8 + rng.index(below: 300), h = 8 + rng.index(below: 300)
            let box = aug.cropBox(width: w, height: h, rng: &rng)
            #expect(box.x >= 0 && box.y >= 0 && box.width > 0 && box.height > 0 && box.x + box.width <= w && box.y + box.height <= h)
        }
        let image = ImageAugmentation.resizedCrop(view, box: .init(x: 3, y: 2, width: 20, height: 20), size: 16)
        #expect(ImageAugmentation.flipped(ImageAugmentation.flipped(image, size: 16), size: 16) == image)
        #expect(ImageAugmentation.flipped(image, size: 16) != image)
        let mel = MelView(frames: 10, bands: 4, values: (0..<40).map(Float.init))
        var m1 = RandomSource(seed: 3), m2 = RandomSource(seed: 3)
        #expect(AudioAugmentation().apply(mel, rng: &m1) == AudioAugmentation().apply(mel, rng: &m2))
    }

    @Test("the stage emits all three kinds from moving video with audio")
    func stageEmitsAllKinds() {
        var config = PairingConfig()
        config.patchSize = 32
        let kinds = Self.kindsEmitted(config)
        // 4 s of video at 4 pairs/s per kind, less the anchors' lag (0.5 s temporal, 0.8 s audio).
        #expect(kinds[.temporal, default: 0] >= 12 && kinds[.audioVideo, default: 0] >= 10 && kinds[.tracked, default: 0] >= 1, "\(kinds)")
    }

    @Test("a pair rate of 0 emits none of that kind, not one per stretch of timeline")
    func zeroRates() {
        var config = PairingConfig()
        config.patchSize = 32
        config.audioVideoPerSecond = 0
        var kinds = Self.kindsEmitted(config)
        #expect(kinds[.audioVideo] == nil && kinds[.temporal, default: 0] >= 12, "\(kinds)")
        config.audioVideoPerSecond = 4
        config.temporalPerSecond = 0
        kinds = Self.kindsEmitted(config)
        #expect(kinds[.temporal] == nil && kinds[.audioVideo, default: 0] >= 10, "\(kinds)")
    }

    /// The examples of each kind a stage emits from 4 s of a moving object with audio (source 3).
    static func kindsEmitted(_ config: PairingConfig) -> [PairKind: Int] {
        var video = MovingObjectVideo(seed: 41)
        var stage = PairingStage(source: 3, config: config, seed: 1)
        var kinds: [PairKind: Int] = [:]
        for i in 0..<100 {
            let t = Double(i) * 0.04
            stage.ingest(Self.clockMel(source: 3, from: t, frames: 4))
            let g = video.frame(x: 10 + i, y: 40, noise: 2)
            let rgb = g.values.flatMap { v -> [UInt8] in let b = UInt8(max(0, min(255, v))); return [b, b, b] }
            let frame = TimedFrame(source: 3, segment: 0, time: t, width: 128, height: 128, pixels: rgb)
            for e in stage.ingest(frame) {
                kinds[e.kind, default: 0] += 1
                #expect(e.origin.source == 3)
                if e.kind == .temporal { #expect(abs(e.positiveTime - e.origin.time) <= 0.5) }
                if e.kind == .tracked { #expect(e.anchor.width == 32 && e.positive?.width == 32) }
            }
        }
        return kinds
    }

    @Test("pair rates hold on any frame grid: 4 per second at 10 fps is 4 per second, not 3.3")
    func rates() {
        var stage = PairingStage(source: 0, config: PairingConfig(), seed: 1)
        var temporal = 0
        for i in 0..<105 { temporal += stage.ingest(flatFrame(segment: 0, time: Double(i) * 0.1)).filter { $0.kind == .temporal }.count }
        // 10.4 s of video, anchors lagging 0.5 s: about 4 × 9.9 pairs.
        #expect(temporal >= 38 && temporal <= 41, "\(temporal) temporal pairs")
    }

    @Test("the config validates and names the key at fault")
    func config() {
        #expect(PairingConfig().validationError() == nil)
        var c = PairingConfig()
        c.far = 0.2
        #expect(c.validationError()?.contains("pairing.far") == true)
    }

    @Test("one preprocessing contract: augmentation with every random step off equals the evaluation input embed and export use")
    func preprocessingContract() {
        var rng = RandomSource(seed: 5)
        let view = ImageView(width: 48, height: 48, pixels: (0..<(48 * 48 * 3)).map { _ in UInt8(rng.index(below: 256)) })
        var aug = ImageAugmentation()
        aug.outputSize = 16
        aug.cropScale = 1...1
        aug.cropRatio = 1...1
        aug.flipProbability = 0
        aug.jitterProbability = 0
        aug.grayscaleProbability = 0
        aug.blurProbability = 0
        let hwc = aug.apply(view, rng: &rng)
        let input = EncoderInput.Video(decodeShortSide: 48, fps: 0, side: 16, mean: aug.mean, std: aug.std)
        let chw = input.evaluationInput(view)
        #expect(hwc.count == chw.count && chw.count == 3 * 16 * 16)
        var worst: Float = 0
        for i in 0..<(16 * 16) { for c in 0..<3 { worst = max(worst, abs(hwc[i * 3 + c] - chw[c * 256 + i])) } }
        #expect(worst < 1e-5, "largest difference \(worst)")
        // Normalisation is (pixel / 255 - mean) / std per channel.
        let flat = ImageView(width: 4, height: 4, pixels: [UInt8](repeating: 200, count: 48))
        let one = EncoderInput.Video(decodeShortSide: 4, fps: 0, side: 2, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.5]).evaluationInput(flat)
        for c in 0..<3 {
            let expected = (200 / 255 - [Float(0.5), 0.4, 0.3][c]) / [Float(0.2), 0.25, 0.5][c]
            #expect(abs(one[c * 4] - expected) < 1e-5)
        }
    }
}
