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

/// The bounded store between pairing and training. A stream is not i.i.d.: consecutive frames are
/// near copies, and training on them in arrival order collapses quality. When the byte bound is
/// exceeded the buffer evicts the most redundant example (MinRed): the one whose nearest
/// neighbour is most similar.
///
/// Similarity uses a cheap proxy instead of the key encoder: an 8×8 RGB thumbnail of the anchor
/// with its mean removed, L2-normalised (192 values). Near-identical frames score ≈1 and distinct
/// scenes much lower, which is what eviction needs; an encoder pass per insert would cost more than
/// the whole pairing stage. Nearest neighbours are refreshed lazily: when an example's neighbour is
/// evicted its score (an upper bound) is recomputed only once it becomes the eviction candidate.
public struct ReplayBuffer: Sendable {
    public let byteLimit: Int
    public private(set) var byteCount = 0
    public private(set) var inserted = 0
    public private(set) var evicted = 0

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
    private var nextID: UInt64 = 0
    static let proxySide = 8

    public init(byteLimit: Int) {
        precondition(byteLimit > 0, "ReplayBuffer needs a positive byte limit")
        self.byteLimit = byteLimit
    }

    public var count: Int { entries.count }
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

    /// Adds an example, evicting the most redundant ones while the byte bound is exceeded.
    /// An example larger than the whole bound is not kept.
    public mutating func insert(_ example: TrainingExample) {
        guard example.byteCount <= byteLimit else { return }
        let proxy = Self.proxy(example.anchor)
        let id = nextID
        nextID += 1
        var entry = Entry(example: example, id: id, proxy: proxy, nearest: nil, nearestSimilarity: -2)
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
        entries.append(entry)
        byteCount += example.byteCount
        inserted += 1
        while byteCount > byteLimit { evictMostRedundant() }
    }

    private mutating func evictMostRedundant() {
        while true {
            guard let candidate = entries.indices.max(by: { entries[$0].nearestSimilarity < entries[$1].nearestSimilarity }) else { return }
            if entries[candidate].stale {
                refreshNearest(candidate)
                continue
            }
            // Evict; examples that had it as nearest neighbour now hold an upper bound.
            let gone = entries[candidate].id
            byteCount -= entries[candidate].example.byteCount
            entries.swapAt(candidate, entries.count - 1)
            entries.removeLast()
            evicted += 1
            for i in entries.indices where entries[i].nearest == gone { entries[i].stale = true }
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
        return chosen.map { entries[$0].example }
    }
}
