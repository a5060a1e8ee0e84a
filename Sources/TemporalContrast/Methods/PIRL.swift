import Glibc

/// PIRL (Misra & van der Maaten 2020) on a stream: NCE of both views against a memory bank of
/// running-average embeddings (`MemoryBankNCELoss`), the anchor as PIRL's original image and the
/// positive as its transformed version.
///
/// PIRL's bank has one entry per image of a finite dataset; a stream has no such set, so an
/// instance here is a source's stretch of `mask_window` seconds (at least half a second), hashed
/// to one of `bank` slots. Negatives are drawn from the bank, never from the anchor's own source
/// within the mask window. Each pair's negatives are drawn from a generator seeded by the seed, the
/// step and the pair's row in the global batch, so a resumed run draws what the uninterrupted one
/// would have, and a distributed step what one process would.
///
/// Distributed: each rank's loss is weighted by its share of the global pairs; the bank updates of
/// every rank are applied in rank order on every rank, so the banks stay identical.
final class PIRL: JointEmbeddingMethod {
    private(set) var bank: MemoryBank
    /// The origin each slot was last written from (source −1: the initial random entry).
    private(set) var slotOrigins: [SampleOrigin]
    let loss: MemoryBankNCELoss
    let maskWindow: Double
    /// Seeds the negatives; in the checkpoint, so a resumed run draws the same ones.
    private(set) var seed: UInt64
    private var pending: (ids: [Int], embeddings: Tensor, origins: [SampleOrigin])?

    init(bank slots: Int, negatives: Int, lambda: Float, bankMomentum: Float, temperature: Float, maskWindow: Double,
         embedding: Int, seed: UInt64, rng: inout RandomSource) {
        bank = MemoryBank(instances: slots, dimension: embedding, momentum: bankMomentum, rng: &rng)
        slotOrigins = Array(repeating: SampleOrigin(source: -1, time: 0), count: slots)
        loss = MemoryBankNCELoss(temperature: temperature, negatives: negatives, lambda: lambda)
        self.maskWindow = maskWindow
        self.seed = seed
    }

    /// The slot of the instance `origin` belongs to.
    func slot(of origin: SampleOrigin) -> Int {
        let stretch = Int64((origin.time / max(maskWindow, 0.5)).rounded(.down))
        var h = UInt64(bitPattern: Int64(origin.source)) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(bitPattern: stretch) &* 0xC2B2_AE3D_27D4_EB4F
        h ^= h >> 29
        return Int(h % UInt64(bank.instances))
    }

    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep {
        pending = nil
        // Every rank takes part in the gather, pairs or not.
        let firstRow = Self.firstRow(context)
        guard let (anchors, positives) = views.pair else { return .none }
        let origins = views.origins.count == anchors.batch
            ? views.origins
            : (0..<anchors.batch).map { SampleOrigin(source: -2 - $0, time: Double(context.step)) }
        let ids = origins.map(slot(of:))
        let (f, fRecord) = online.forward(anchors)
        let (g, gRecord) = online.forward(positives)
        let stepSeed = seed ^ (UInt64(context.step) &* 0x9E37_79B9_7F4A_7C15)
        var unused = RandomSource(seed: stepSeed)
        let window = maskWindow, slotOrigins = self.slotOrigins
        let r = loss(transformed: g, original: f, ids: ids, bank: bank, rng: &unused,
                     rowRandom: { RandomSource(seed: stepSeed ^ (UInt64(firstRow + $0 + 1) &* 0xD6E8_FEB8_6659_FD93)) },
                     excluded: { row, entry in slotOrigins[entry].conflicts(with: origins[row], window: window) })
        let share = context.share
        let scale = context.ranks > 1 ? share : 1
        online.backward(scale == 1 ? r.gradients[0] : r.gradients[0].scaled(by: scale), record: gRecord)
        online.backward(scale == 1 ? r.gradients[1] : r.gradients[1].scaled(by: scale), record: fRecord)
        pending = (ids, f, origins)
        return MethodStep(loss: r.loss, share: r.loss * share, health: r.health, embeddings: f)
    }

    /// This rank's first row in the global batch (the pairs of the ranks before it).
    private static func firstRow(_ context: MethodContext) -> Int {
        guard let collective = context.collective, context.ranks > 1 else { return 0 }
        let counts = collective.allgather([Double(context.localPairs)])
        return counts[..<collective.rank].reduce(0) { $0 + Int($1.first ?? 0) }
    }

    func didUpdate(online: EmbeddingNetwork, context: MethodContext) {
        defer { pending = nil }
        var ids = pending?.ids ?? [], embeddings = pending?.embeddings, origins = pending?.origins ?? []
        if let collective = context.collective, context.ranks > 1, context.gatherUpdates {
            let d = bank.dimension
            let all = collective.allgather(embeddings?.storage ?? []).flatMap { $0 }
            ids = collective.allgather(ids.map(Double.init)).flatMap { $0 }.map { Int($0) }
            origins = Gathered.unflatten(collective.allgather(Gathered.flatten(origins, rows: origins.count)).flatMap { $0 })
            embeddings = all.isEmpty ? nil : Tensor(shape: [all.count / d, d], storage: all)
        }
        guard let embeddings, ids.count == embeddings.batch else { return }
        bank.update(ids: ids, embeddings: embeddings)
        for (id, origin) in zip(ids, origins) { slotOrigins[id] = origin }
    }

    func save(into file: inout SafeTensors) {
        file.set("pirl.bank", shape: [bank.instances, bank.dimension], values: bank.entries)
        file.set("pirl.sources", shape: [bank.instances], doubles: slotOrigins.map { Double($0.source) })
        file.set("pirl.times", shape: [bank.instances], doubles: slotOrigins.map(\.time))
        file.metadata["pirl.seed"] = String(seed)
    }

    func restorer(from file: StateReader) throws(Learner.RestoreError) -> () -> Void {
        let (n, d) = (bank.instances, bank.dimension)
        let entries = try file.floats("pirl.bank", count: n * d, shape: [n, d])
        let sources = try file.doubles("pirl.sources", count: n)
        let times = try file.doubles("pirl.times", count: n)
        guard sources.allSatisfy({ $0.rounded() == $0 && abs($0) < 1e15 }) else { throw file.fail("pirl.sources holds values that are not source ids") }
        guard let savedSeed = file.file.metadata["pirl.seed"].flatMap({ UInt64($0) }) else { throw file.fail("metadata pirl.seed is missing or not an unsigned integer") }
        let restored = MemoryBank(instances: n, dimension: d, momentum: bank.momentum, entries: entries)
        let origins = (0..<n).map { SampleOrigin(source: Int(sources[$0]), time: times[$0]) }
        return { [self] in
            bank = restored
            slotOrigins = origins
            seed = savedSeed
        }
    }
}
