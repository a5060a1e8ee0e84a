import Foundation

/// How many of each pair kind a batch should hold, as fractions. Kinds with nothing available
/// give their share to the others in proportion, so a source without audio still fills batches.
public struct PairMix: Sendable, Codable, Equatable {
    public var temporal: Double = 0.5
    public var tracked: Double = 0.25
    public var audioVideo: Double = 0.25

    public init(temporal: Double = 0.5, tracked: Double = 0.25, audioVideo: Double = 0.25) {
        self.temporal = temporal
        self.tracked = tracked
        self.audioVideo = audioVideo
    }

    public func share(_ kind: PairKind) -> Double {
        switch kind {
        case .temporal: temporal
        case .tracked: tracked
        case .audioVideo: audioVideo
        }
    }

    /// Whole counts per kind summing to `total`, over the kinds in `available` only.
    public func counts(total: Int, available: Set<PairKind>) -> [PairKind: Int] {
        let kinds = PairKind.allCases.filter { available.contains($0) && share($0) > 0 }
        let sum = kinds.reduce(0) { $0 + share($1) }
        guard sum > 0 else { return [:] }
        var counts: [PairKind: Int] = [:]
        var assigned = 0
        for k in kinds {
            counts[k] = Int((Double(total) * share(k) / sum).rounded(.down))
            assigned += counts[k]!
        }
        // Hand out the remainder in kind order, deterministically.
        var i = 0
        while assigned < total {
            counts[kinds[i % kinds.count], default: 0] += 1
            assigned += 1
            i += 1
        }
        return counts
    }
}

/// Which example a full replay buffer evicts.
public enum ReplayPolicy: String, Sendable, CaseIterable, Codable {
    /// The most redundant one: the example whose nearest neighbour is most similar (MinRed).
    case minred
    /// The oldest one (first in, first out): the buffer is a window on the newest arrivals.
    case fifo
}

/// The bounded store between pairing and training. A stream is not i.i.d.: consecutive frames are
/// near copies, and training on them in arrival order collapses quality. When the byte bound is
/// exceeded the buffer evicts the most redundant example (MinRed, the default `policy`): the one
/// whose nearest neighbour is most similar; `.fifo` evicts the oldest instead (the baseline).
///
/// Similarity uses a cheap proxy instead of the key encoder: an 8×8 RGB thumbnail of the anchor
/// with its mean removed, L2-normalised (192 values). Near-identical frames score ≈1 and distinct
/// scenes much lower, which is what eviction needs; an encoder pass per insert would cost more than
/// the whole pairing stage. Nearest neighbours are refreshed lazily: when an example's neighbour is
/// evicted its score (an upper bound) is recomputed only once it becomes the eviction candidate.
public struct ReplayBuffer: Sendable {
    public let byteLimit: Int
    public let policy: ReplayPolicy
    public private(set) var byteCount = 0
    public private(set) var inserted = 0
    public private(set) var evicted = 0
    /// Example uses the trainer may draw before it waits for new data (see `grant(_:cap:)`).
    public private(set) var credit = 0

    struct Entry: Sendable {
        var example: TrainingExample
        var id: UInt64
        var proxy: [Float]
        var nearest: UInt64?
        var nearestSimilarity: Float
        var stale = false
        var uses = 0
    }

    var entries: [Entry] = []
    var nextID: UInt64 = 0
    static let proxySide = 8

    public init(byteLimit: Int, policy: ReplayPolicy = .minred) {
        precondition(byteLimit > 0, "ReplayBuffer needs a positive byte limit")
        self.byteLimit = byteLimit
        self.policy = policy
    }

    public var count: Int { entries.count }

    /// The `n` examples inserted last (newest first), for looking at, not training: uses are not
    /// counted.
    public func newest(_ n: Int) -> [TrainingExample] {
        entries.sorted { $0.id > $1.id }.prefix(n).map(\.example)
    }

    /// Up to `n` examples chosen uniformly without replacement, for looking at: uses are not counted.
    public func peek(_ n: Int, rng: inout RandomSource) -> [TrainingExample] {
        var indices = Array(entries.indices)
        let k = min(n, indices.count)
        for i in 0..<k { indices.swapAt(i, i + rng.index(below: indices.count - i)) }
        return indices.prefix(k).map { entries[$0].example }
    }
    public var examples: [TrainingExample] { entries.map(\.example) }
    public func count(of kind: PairKind) -> Int { entries.reduce(0) { $0 + ($1.example.kind == kind ? 1 : 0) } }

    /// The redundancy proxy of an image view (see the type's documentation).
    public static func proxy(_ view: ImageView) -> [Float] {
        let s = proxySide
        var v = [Float](repeating: 0, count: s * s * 3)
        var counts = [Float](repeating: 0, count: s * s)
        for y in 0..<view.height {
            let cy = y * s / view.height
            for x in 0..<view.width {
                let cell = cy * s + x * s / view.width
                counts[cell] += 1
                for c in 0..<3 { v[cell * 3 + c] += Float(view.pixels[(y * view.width + x) * 3 + c]) }
            }
        }
        for cell in 0..<(s * s) where counts[cell] > 0 { for c in 0..<3 { v[cell * 3 + c] /= counts[cell] } }
        for c in 0..<3 {
            var mean: Float = 0
            for cell in 0..<(s * s) { mean += v[cell * 3 + c] }
            mean /= Float(s * s)
            for cell in 0..<(s * s) { v[cell * 3 + c] -= mean }
        }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        // A flat frame has no structure: give all flat frames one shared direction (redundant with each other).
        if norm < 1e-3 {
            v = [Float](repeating: 0, count: v.count)
            v[0] = 1
            return v
        }
        return v.map { $0 / norm }
    }

    private static func similarity(_ a: [Float], _ b: [Float]) -> Float {
        var s: Float = 0
        for i in 0..<a.count { s += a[i] * b[i] }
        return s
    }

    /// Adds an example, evicting by `policy` while the byte bound is exceeded. An example larger
    /// than the whole bound is not kept.
    public mutating func insert(_ example: TrainingExample) {
        guard example.byteCount <= byteLimit else { return }
        let proxy = Self.proxy(example.anchor)
        let id = nextID
        nextID += 1
        var entry = Entry(example: example, id: id, proxy: proxy, nearest: nil, nearestSimilarity: -2)
        if policy == .minred { link(&entry) } else {
            // No neighbours kept: an upper bound that a later MinRed run (a changed config on
            // resume) refreshes when the entry becomes the eviction candidate.
            entry.nearestSimilarity = 2
            entry.stale = true
        }
        entries.append(entry)
        byteCount += example.byteCount
        inserted += 1
        while byteCount > byteLimit { evict() }
    }

    /// Finds `entry`'s nearest neighbour, and makes it the nearest of those it is closer to.
    private mutating func link(_ entry: inout Entry) {
        let proxy = entry.proxy, id = entry.id
        for i in entries.indices {
            let s = Self.similarity(proxy, entries[i].proxy)
            if s > entry.nearestSimilarity {
                entry.nearestSimilarity = s
                entry.nearest = entries[i].id
            }
            if s > entries[i].nearestSimilarity {
                entries[i].nearestSimilarity = s
                entries[i].nearest = id
                entries[i].stale = false
            }
        }
    }

    private mutating func evict() {
        switch policy {
        case .minred: evictMostRedundant()
        case .fifo: evictOldest()
        }
    }

    private mutating func evictOldest() {
        guard let oldest = entries.indices.min(by: { entries[$0].id < entries[$1].id }) else { return }
        remove(at: oldest)
    }

    /// Removes entry `i`; entries that had it as nearest neighbour now hold an upper bound.
    private mutating func remove(at i: Int) {
        let gone = entries[i].id
        byteCount -= entries[i].example.byteCount
        entries.swapAt(i, entries.count - 1)
        entries.removeLast()
        evicted += 1
        for j in entries.indices where entries[j].nearest == gone { entries[j].stale = true }
    }

    private mutating func evictMostRedundant() {
        while true {
            guard let candidate = entries.indices.max(by: { entries[$0].nearestSimilarity < entries[$1].nearestSimilarity }) else { return }
            if entries[candidate].stale {
                refreshNearest(candidate)
                continue
            }
            remove(at: candidate)
            return
        }
    }

    private mutating func refreshNearest(_ i: Int) {
        var best: Float = -2
        var nearest: UInt64?
        for j in entries.indices where j != i {
            let s = Self.similarity(entries[i].proxy, entries[j].proxy)
            if s > best {
                best = s
                nearest = entries[j].id
            }
        }
        entries[i].nearestSimilarity = best
        entries[i].nearest = nearest
        entries[i].stale = false
    }

    /// Examples trained on fewer than `maxUses` times (all of them when nil).
    public func available(maxUses: Int? = nil) -> Int {
        guard let maxUses else { return entries.count }
        return entries.reduce(0) { $0 + ($1.uses < maxUses ? 1 : 0) }
    }

    /// Examples not yet trained on.
    public var unseen: Int { available(maxUses: 1) }

    /// Adds `uses` to the credit, up to `cap`. A producer grants a fixed number of uses per example
    /// it delivers and every draw spends one per example, so the examples a step sees do not
    /// depend on how fast decoding keeps up with training. The cap keeps a burst of data from
    /// buying over-reuse later.
    public mutating func grant(_ uses: Int, cap: Int) {
        credit = max(credit, min(credit + uses, cap))
    }

    /// Draws up to `total` distinct examples with kinds in `mix` proportions, spreading each kind's
    /// share across sources (a random source first, then a random example of it), among examples
    /// used fewer than `maxUses` times. Counts each use.
    public mutating func sample(_ total: Int, mix: PairMix, rng: inout RandomSource, maxUses: Int? = nil) -> [TrainingExample] {
        var byKind: [PairKind: [Int: [Int]]] = [:]
        var eligible = 0
        for (i, e) in entries.enumerated() where maxUses.map({ e.uses < $0 }) ?? true {
            byKind[e.example.kind, default: [:]][e.example.origin.source, default: []].append(i)
            eligible += 1
        }
        let counts = mix.counts(total: min(total, eligible), available: Set(byKind.keys))
        var chosen: [Int] = []
        for kind in PairKind.allCases {
            guard var sources = byKind[kind], let want = counts[kind] else { continue }
            var taken = 0
            while taken < want && !sources.isEmpty {
                let keys = sources.keys.sorted()
                let source = keys[rng.index(below: keys.count)]
                var pool = sources[source]!
                let pick = rng.index(below: pool.count)
                chosen.append(pool[pick])
                pool.swapAt(pick, pool.count - 1)
                pool.removeLast()
                sources[source] = pool.isEmpty ? nil : pool
                taken += 1
            }
        }
        for i in chosen { entries[i].uses += 1 }
        // Draws made while no producer is active spend what is left, never below zero.
        credit = max(0, credit - chosen.count)
        return chosen.map { entries[$0].example }
    }
}

// MARK: - Checkpointing

extension ReplayBuffer {
    /// One entry's bookkeeping as saved in a checkpoint; floats travel as bit patterns (hex) so
    /// they come back exactly.
    private struct SavedEntry: Codable {
        var kind: PairKind
        var anchor: [Int]
        var positive: [Int]?
        var audio: [Int]?
        var source: Int
        var time: String
        var positiveTime: String
        var id: UInt64
        var nearest: UInt64?
        var similarity: String
        var stale: Bool
        var uses: Int
    }

    private struct Saved: Codable {
        var entries: [SavedEntry]
        var nextID: UInt64
        var inserted: Int
        var evicted: Int
        /// Absent in checkpoints written before the credit existed.
        var credit: Int?
    }

    public struct RestoreError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes every example and its eviction and reuse bookkeeping into `file`: images as one U8
    /// tensor `<prefix>pixels`, log-mel windows as one F32 tensor `<prefix>audio`, the rest as JSON
    /// in the metadata key `<prefix>entries`. The redundancy proxies are recomputed on restore.
    public func save(into file: inout SafeTensors, prefix: String = "replay.") {
        var pixels: [UInt8] = []
        var audio: [Float] = []
        for e in entries {
            pixels += e.example.anchor.pixels
            if let p = e.example.positive { pixels += p.pixels }
            if let a = e.example.audio { audio += a.values }
        }
        if !pixels.isEmpty { file.set("\(prefix)pixels", shape: [pixels.count], bytes: pixels) }
        if !audio.isEmpty { file.set("\(prefix)audio", shape: [audio.count], values: audio) }
        file.metadata["\(prefix)entries"] = bookkeeping()
    }

    /// What `save(into:prefix:)` writes, as streams that copy each example's pixels and audio
    /// straight to the file: a checkpoint of a full buffer costs no second copy of it in memory.
    /// The streams hold this value (copy-on-write), so the buffer may change meanwhile.
    public func tensorStreams(prefix: String = "replay.") -> (tensors: [TensorStream], metadata: [String: String]) {
        let examples = entries.map(\.example)
        var pixelCount = 0, audioCount = 0
        for x in examples {
            pixelCount += x.anchor.pixels.count + (x.positive?.pixels.count ?? 0)
            audioCount += x.audio?.values.count ?? 0
        }
        var tensors: [TensorStream] = []
        if pixelCount > 0 {
            tensors.append(TensorStream(name: "\(prefix)pixels", dtype: .u8, shape: [pixelCount]) { sink in
                for x in examples {
                    sink.append(x.anchor.pixels)
                    if let p = x.positive { sink.append(p.pixels) }
                }
            })
        }
        if audioCount > 0 {
            tensors.append(TensorStream(name: "\(prefix)audio", dtype: .f32, shape: [audioCount]) { sink in
                for x in examples { if let a = x.audio { sink.append(a.values) } }
            })
        }
        return (tensors, ["\(prefix)entries": bookkeeping()])
    }

    private func bookkeeping() -> String {
        var saved = Saved(entries: [], nextID: nextID, inserted: inserted, evicted: evicted, credit: credit)
        saved.entries.reserveCapacity(entries.count)
        func hex(_ bits: some FixedWidthInteger) -> String { String(bits, radix: 16) }
        for e in entries {
            let x = e.example
            saved.entries.append(SavedEntry(
                kind: x.kind, anchor: [x.anchor.width, x.anchor.height],
                positive: x.positive.map { [$0.width, $0.height] }, audio: x.audio.map { [$0.frames, $0.bands] },
                source: x.origin.source, time: hex(x.origin.time.bitPattern), positiveTime: hex(x.positiveTime.bitPattern),
                id: e.id, nearest: e.nearest, similarity: hex(e.nearestSimilarity.bitPattern), stale: e.stale, uses: e.uses))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys  // the same buffer always saves to the same bytes
        let json = (try? encoder.encode(saved)) ?? Data()
        return String(decoding: json, as: UTF8.self)
    }

    /// Largest image side a saved entry may claim (the decoder's own cap).
    static let maximumSide = 8192

    /// The buffer `save(into:prefix:)` wrote, or nil when `file` holds none. Entries beyond
    /// `byteLimit` (a smaller bound than when it was saved) are evicted as usual. Every size, dtype
    /// and value is checked (with overflow-checked arithmetic) before it is used.
    public init?(restoring file: SafeTensors, byteLimit: Int, policy: ReplayPolicy = .minred, prefix: String = "replay.") throws(RestoreError) {
        guard let json = file.metadata["\(prefix)entries"] else { return nil }
        func fail(_ m: String) -> RestoreError { RestoreError(description: "replay buffer in checkpoint: \(m)") }
        guard let saved = try? JSONDecoder().decode(Saved.self, from: Data(json.utf8)) else { throw fail("entries are not valid JSON") }
        let pixelEntry = file["\(prefix)pixels"], audioEntry = file["\(prefix)audio"]
        if let pixelEntry, pixelEntry.dtype != .u8 { throw fail("\(prefix)pixels is \(pixelEntry.dtype.rawValue), expected U8") }
        if let audioEntry, audioEntry.dtype != .f32 { throw fail("\(prefix)audio is \(audioEntry.dtype.rawValue), expected F32") }
        let pixels = pixelEntry?.bytes ?? []
        let audio = audioEntry?.values ?? []
        guard audio.allSatisfy(\.isFinite) else { throw fail("\(prefix)audio holds NaN or infinite values") }
        // Counters far below their types' limits, so inserting and sampling can never overflow them.
        let counterLimit = 1 << 52
        guard (0...counterLimit).contains(saved.inserted), (0...counterLimit).contains(saved.evicted), (0...counterLimit).contains(saved.credit ?? 0), saved.nextID <= UInt64(counterLimit) else {
            throw fail("counters out of range")
        }
        self.init(byteLimit: byteLimit, policy: policy)
        var p = 0, a = 0
        func image(_ size: [Int]) throws(RestoreError) -> ImageView {
            guard size.count == 2, (1...Self.maximumSide).contains(size[0]), (1...Self.maximumSide).contains(size[1]),
                pixels.count - p >= size[0] * size[1] * 3
            else { throw fail("image sizes do not match the pixel data") }
            defer { p += size[0] * size[1] * 3 }
            return ImageView(width: size[0], height: size[1], pixels: Array(pixels[p..<(p + size[0] * size[1] * 3)]))
        }
        func bits<T: FixedWidthInteger>(_ s: String, as: T.Type) throws(RestoreError) -> T {
            guard let v = T(s, radix: 16) else { throw fail("'\(s.prefix(40))' is not a hexadecimal bit pattern") }
            return v
        }
        func time(_ s: String) throws(RestoreError) -> Double {
            let t = Double(bitPattern: try bits(s, as: UInt64.self))
            guard t.isFinite else { throw fail("a timestamp is not finite") }
            return t
        }
        var ids = Set<UInt64>()
        for s in saved.entries {
            guard (0...counterLimit).contains(s.uses), ids.insert(s.id).inserted, s.id < saved.nextID else { throw fail("entry \(s.id) has a negative use count or a repeated or future id") }
            let anchor = try image(s.anchor)
            let positive = try s.positive.map { (size) throws(RestoreError) in try image(size) }
            guard (positive != nil) == (s.kind != .audioVideo) else { throw fail("entry \(s.id) of kind \(s.kind.rawValue) has the wrong views") }
            var mel: MelView?
            if let shape = s.audio {
                guard shape.count == 2, (1...100_000).contains(shape[0]), (1...1024).contains(shape[1]), audio.count - a >= shape[0] * shape[1] else {
                    throw fail("audio sizes do not match the audio data")
                }
                mel = MelView(frames: shape[0], bands: shape[1], values: Array(audio[a..<(a + shape[0] * shape[1])]))
                a += shape[0] * shape[1]
            }
            guard (mel != nil) == (s.kind == .audioVideo) else { throw fail("entry \(s.id) of kind \(s.kind.rawValue) has the wrong audio") }
            let similarity = Float(bitPattern: try bits(s.similarity, as: UInt32.self))
            guard similarity.isFinite else { throw fail("entry \(s.id) has a non-finite similarity") }
            let example = TrainingExample(
                kind: s.kind, anchor: anchor, positive: positive, audio: mel,
                origin: SampleOrigin(source: s.source, time: try time(s.time)), positiveTime: try time(s.positiveTime))
            entries.append(Entry(
                example: example, id: s.id, proxy: Self.proxy(anchor), nearest: s.nearest,
                nearestSimilarity: similarity, stale: s.stale, uses: s.uses))
            byteCount += example.byteCount
        }
        guard p == pixels.count, a == audio.count else { throw fail("\(pixels.count - p) pixel bytes and \(audio.count - a) audio values left over") }
        nextID = saved.nextID
        inserted = saved.inserted
        evicted = saved.evicted
        credit = saved.credit ?? 0
        while byteCount > byteLimit { evict() }
    }
}
