import Testing
@testable import TemporalContrast

/// Every method behind `JointEmbeddingMethod`: its loss against finite differences, its state
/// through a checkpoint, and a short training run without collapse.
@Suite("Methods: losses, exact resume, training without collapse", .serialized)
struct MethodTests {
    static func learner(_ kind: MethodKind, seed: UInt64, embedding: Int = 16) -> Learner {
        var c = LearnerConfig()
        c.objective = kind
        c.hidden = 32
        c.embedding = embedding
        c.queue = 64
        c.audioWeight = 0
        c.warmupSteps = 2
        c.seed = seed
        c.methodSettings["pirl_bank"] = 128
        c.methodSettings["pirl_negatives"] = 32
        return Learner(config: c)
    }

    /// A batch of `n` pairs from `data`, with origins (one source per instance, 10 s apart in time
    /// so PIRL's instances and the masks tell them apart).
    static func batch(_ data: inout SyntheticPairs, _ n: Int, below count: Int = 50) -> Learner.Batch {
        let ids = data.randomIDs(n, below: count)
        let (a, b) = data.batch(ids)
        var batch = Learner.Batch()
        batch.anchors = a
        batch.positives = b
        batch.imageOrigins = ids.map { SampleOrigin(source: $0, time: 10 * Double($0)) }
        return batch
    }

    @Test("Barlow Twins: gradients against finite differences; 0 for decorrelated identical views, d for collapsed ones")
    func barlowTwins() {
        var check = Check(seed: 21)
        let a = check.tensor([6, 3], scale: 0.5), b = check.tensor([6, 3], scale: 0.5)
        ObjectiveTests.checkGradients([a, b], epsilon: 1e-3, tolerance: 2e-2) { BarlowTwinsLoss(lambda: 0.3)($0[0], $0[1]) }
        // Columns ±1 and orthogonal: standardised, C = I.
        let decorrelated = Tensor(shape: [4, 2], storage: [1, 1, -1, 1, 1, -1, -1, -1])
        #expect(BarlowTwinsLoss()(decorrelated, decorrelated).loss < 1e-4)
        let collapsed = Tensor(shape: [4, 3], storage: [Float](repeating: 0.5, count: 12))
        #expect(abs(BarlowTwinsLoss()(collapsed, collapsed).loss - 3) < 1e-4)
    }

    @Test("the predictor methods' −cos: gradient against finite differences; −1 for parallel rows")
    func negativeCosineLoss() {
        var check = Check(seed: 22)
        let p = check.tensor([5, 4]), t = check.tensor([5, 4])
        ObjectiveTests.checkGradients([p], epsilon: 1e-3, tolerance: 1e-2) { inputs in
            let (loss, grad) = negativeCosine(inputs[0], t)
            return ObjectiveResult(loss: loss, gradients: [grad], health: ContrastiveHealth())
        }
        #expect(abs(negativeCosine(p, p.scaled(by: 3)).loss + 1) < 1e-6)
    }

    @Test("PIRL's NCE draws no excluded entry as a negative while others remain")
    func pirlExclusion() {
        // Entry 0 is every row's positive; 1...9 point away from it; 10...39 equal it (false
        // negatives, as the same source a moment later would be).
        var entries: [Float] = [1, 0]
        for _ in 1...9 { entries += [-1, 0] }
        for _ in 10...39 { entries += [1, 0] }
        let bank = MemoryBank(instances: 40, dimension: 2, momentum: 0.5, entries: entries)
        let rows = Tensor(shape: [3, 2], storage: [1, 0, 1, 0, 1, 0])
        let nce = MemoryBankNCELoss(temperature: 0.1, negatives: 16)
        var rng = RandomSource(seed: 5)
        let masked = nce(transformed: rows, original: rows, ids: [0, 0, 0], bank: bank, rng: &rng, excluded: { _, entry in entry >= 10 })
        let unmasked = nce(transformed: rows, original: rows, ids: [0, 0, 0], bank: bank, rng: &rng)
        #expect(masked.loss < 0.01, "\(masked.loss)")
        #expect(unmasked.loss > 1, "\(unmasked.loss)")
    }

    @Test("every method: state() then restore() into a fresh learner continues bit for bit (3 + 3 steps equal 6)", arguments: MethodKind.allCases)
    func exactResume(kind: MethodKind) throws {
        ComputeThreads.configure(1)
        var data = SyntheticPairs(instances: 50, seed: 4)
        let batches = (0..<6).map { _ in Self.batch(&data, 8) }
        let straight = Self.learner(kind, seed: 4)
        for b in batches { _ = straight.train(b) }
        let first = Self.learner(kind, seed: 4)
        for b in batches[..<3] { _ = first.train(b) }
        let saved = try SafeTensors(data: first.state().serialized())
        let resumed = Self.learner(kind, seed: 99)
        try resumed.restore(saved)
        for b in batches[3...] { _ = resumed.train(b) }
        let a = LearningTests.bits(resumed), b = LearningTests.bits(straight)
        #expect(a.keys.sorted() == b.keys.sorted())
        #expect(a.keys.filter { a[$0] != b[$0] }.isEmpty, "\(kind): differ after resume: \(a.keys.filter { a[$0] != b[$0] }.sorted())")
        #expect(LearningTests.bits(Self.learner(kind, seed: 4)) != b, "\(kind): training changed nothing")
    }

    @Test("a checkpoint of one method does not load into another, and says which it was")
    func wrongMethod() throws {
        let moco = Self.learner(.moco, seed: 1)
        let barlow = Self.learner(.barlow, seed: 1)
        let error = #expect(throws: Learner.RestoreError.self) { try barlow.restore(moco.state()) }
        #expect(error?.description.contains("objective.kind = moco") == true, "\(error?.description ?? "")")
    }

    /// Learning rates for the synthetic pairs below, per method (measured: MoCo at 0.05 reaches
    /// 0.89 queue accuracy while its embeddings collapse to a point: the encoder outruns the stale
    /// queue; the same holds for PIRL's bank; 0.002 keeps both healthy).
    static func syntheticRate(_ kind: MethodKind) -> Float {
        switch kind {
        case .moco, .pirl: 0.002
        case .infonce: 0.02
        case .vicreg, .barlow, .byol, .simsiam, .dino, .swav: 0.005
        }
    }

    /// Rows minus their mean: the raw projections of VICReg and Barlow Twins carry a common offset
    /// that their losses ignore and that would dominate an uncentred rank.
    static func centred(_ t: Tensor) -> [Float] {
        let n = t.batch, d = t.itemSize
        var out = t.storage
        for j in 0..<d {
            let mean = (0..<n).reduce(Float(0)) { $0 + t.storage[$1 * d + j] } / Float(n)
            for i in 0..<n { out[i * d + j] -= mean }
        }
        return out
    }

    /// 150 steps on the synthetic pairs; the held-out embeddings' spread and centred effective rank.
    static func train(_ kind: MethodKind, rate: Float) -> (losses: [Float], std: Float, rank: Float) {
        var c = LearnerConfig()
        c.objective = kind
        c.hidden = 64
        c.embedding = 32
        c.queue = 256
        c.audioWeight = 0
        c.warmupSteps = 10
        c.seed = 3
        c.temperature = 0.2
        c.learningRate = rate
        c.methodSettings["pirl_bank"] = 512
        c.methodSettings["pirl_negatives"] = 128
        let learner = Learner(config: c)
        var data = SyntheticPairs(instances: 300, seed: 8)
        var losses: [Float] = []
        for _ in 0..<150 { losses.append(learner.train(Self.batch(&data, 32, below: 236)).loss) }
        let (a, _) = data.batch(Array(236..<300))
        let z = learner.video.embed(a)
        return (losses, ContrastiveHealth.embeddingStd(z), EffectiveRank.of(Self.centred(z), dimension: 32))
    }

    @Test("every method trains without collapse: loss falls, effective rank and spread stay up", arguments: MethodKind.allCases)
    func trainsWithoutCollapse(kind: MethodKind) {
        ComputeThreads.configure(1)
        let (losses, std, rank) = Self.train(kind, rate: Self.syntheticRate(kind))
        #expect(losses.allSatisfy { $0.isFinite }, "\(kind): non-finite loss")
        if kind != .moco {
            // MoCo's first losses are against a random queue, easier than the real keys that replace it.
            let early = losses.prefix(10).reduce(0, +) / 10, late = losses.suffix(10).reduce(0, +) / 10
            #expect(late < early, "\(kind): loss \(early) → \(late)")
        }
        #expect(std > 0.01, "\(kind): embedding std \(std)")
        #expect(rank > 4, "\(kind): effective rank \(rank) of 32")
        // What each method learns is measured downstream (samples/downstream/): held-out
        // retrieval among 64 synthetic instances after 150 steps moves by a hit or two, within
        // the difference between one and two threads.
    }

    @Test("the collapse criterion catches a collapse: MoCo at 25 times its rate falls onto a point its stale queue is far from")
    func collapseIsCaught() {
        ComputeThreads.configure(1)
        // Centred, the collapsed point's residue still has a high rank: the spread catches a
        // collapse to a point, the rank one to a few dimensions.
        let (_, std, _) = Self.train(.moco, rate: 0.05)
        #expect(std < 0.01, "std \(std)")
    }
}
