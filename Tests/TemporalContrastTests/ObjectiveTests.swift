import Testing
@testable import TemporalContrast

@Suite("Objectives: gradients against finite differences, masking, health")
struct ObjectiveTests {
    /// Checks `gradients[i]` of `objective` against central differences of its loss, coordinate by coordinate.
    static func checkGradients(
        _ inputs: [Tensor], only: [Int]? = nil, epsilon: Float = 1e-3, tolerance: Double = 1e-2,
        sourceLocation: SourceLocation = #_sourceLocation, _ objective: ([Tensor]) -> ObjectiveResult
    ) {
        let result = objective(inputs)
        #expect(result.loss.isFinite, sourceLocation: sourceLocation)
        for which in only ?? Array(inputs.indices) {
            let grad = result.gradients[which]
            #expect(grad.shape == inputs[which].shape, sourceLocation: sourceLocation)
            for i in 0..<inputs[which].count {
                var plus = inputs, minus = inputs
                plus[which].storage[i] += epsilon
                minus[which].storage[i] -= epsilon
                let numeric = (Double(objective(plus).loss) - Double(objective(minus).loss)) / Double(2 * epsilon)
                Check.expectClose(Double(grad.storage[i]), numeric, tolerance, "input \(which)[\(i)]", sourceLocation)
            }
        }
    }

    static func unit(_ t: Tensor) -> Tensor { L2Normalize().infer(t) }

    @Test("InfoNCE (NT-Xent), with and without masking")
    func infoNCE() {
        var check = Check(seed: 11)
        let a = Self.unit(check.tensor([4, 5])), b = Self.unit(check.tensor([4, 5]))
        Self.checkGradients([a, b]) { InfoNCELoss(temperature: 0.2)($0[0], $0[1]) }
        let origins = [SampleOrigin(source: 0, time: 0), SampleOrigin(source: 0, time: 0.5), SampleOrigin(source: 1, time: 0), SampleOrigin(source: 2, time: 9)]
        Self.checkGradients([a, b]) { InfoNCELoss(temperature: 0.2, maskWindow: 1)($0[0], $0[1], origins: origins) }
    }

    @Test("masking removes exactly the conflicting negatives")
    func maskingChangesLoss() {
        var check = Check(seed: 12)
        let a = Self.unit(check.tensor([3, 4])), b = Self.unit(check.tensor([3, 4]))
        let apart = (0..<3).map { SampleOrigin(source: $0, time: 0) }
        let close = [SampleOrigin(source: 0, time: 0), SampleOrigin(source: 0, time: 0.1), SampleOrigin(source: 1, time: 0)]
        let loss = InfoNCELoss(temperature: 0.5, maskWindow: 1)
        #expect(loss(a, b, origins: apart).loss == loss(a, b).loss)
        #expect(loss(a, b, origins: close).loss < loss(a, b).loss)
    }

    @Test("MoCo loss with a full queue, a partly filled queue, and masked queue entries")
    func moco() {
        var check = Check(seed: 13)
        let q = Self.unit(check.tensor([3, 4])), k = Self.unit(check.tensor([3, 4]))
        var full = KeyQueue(randomCapacity: 6, dimension: 4, rng: &check.rng)
        Self.checkGradients([q, k], only: [0]) { MoCoLoss(temperature: 0.1)(query: $0[0], key: $0[1], queue: full) }
        var partial = KeyQueue(capacity: 6, dimension: 4)
        partial.enqueue(Self.unit(check.tensor([2, 4])), origins: [SampleOrigin(source: 0, time: 1), SampleOrigin(source: 5, time: 1)])
        Self.checkGradients([q, k], only: [0]) { MoCoLoss(temperature: 0.1)(query: $0[0], key: $0[1], queue: partial) }
        full.enqueue(Self.unit(check.tensor([3, 4])), origins: (0..<3).map { SampleOrigin(source: $0, time: 0) })
        let origins = (0..<3).map { SampleOrigin(source: $0, time: 0.2) }
        let masked = MoCoLoss(temperature: 0.1, maskWindow: 1)
        Self.checkGradients([q, k], only: [0]) { masked(query: $0[0], key: $0[1], queue: full, origins: origins) }
        // An empty queue leaves only the positive: loss 0, accuracy 1.
        let empty = MoCoLoss()(query: q, key: k, queue: KeyQueue(capacity: 4, dimension: 4))
        #expect(abs(empty.loss) < 1e-6 && empty.health.accuracy == 1)
    }

    @Test("KeyQueue is a FIFO of fixed capacity")
    func keyQueue() {
        var queue = KeyQueue(capacity: 3, dimension: 2)
        queue.enqueue(Tensor(shape: [2, 2], storage: [1, 0, 0, 1]), origins: [SampleOrigin(source: 1, time: 1), SampleOrigin(source: 2, time: 2)])
        #expect(queue.count == 2 && queue.writeIndex == 2)
        queue.enqueue(Tensor(shape: [2, 2], storage: [5, 5, 6, 6]))
        #expect(queue.count == 3 && queue.writeIndex == 1)
        #expect(queue.keys == [6, 6, 0, 1, 5, 5])
        #expect(queue.origins[1] == SampleOrigin(source: 2, time: 2) && queue.origins[0].source == -1)
    }

    @Test("PIRL memory-bank NCE and the bank's momentum update")
    func memoryBank() {
        var check = Check(seed: 14)
        let bank = MemoryBank(instances: 10, dimension: 4, rng: &check.rng)
        let t = Self.unit(check.tensor([3, 4])), o = Self.unit(check.tensor([3, 4]))
        let ids = [2, 5, 7]
        Self.checkGradients([t, o]) { inputs in
            var rng = RandomSource(seed: 99)  // the same negatives on every evaluation
            return MemoryBankNCELoss(temperature: 0.2, negatives: 5)(transformed: inputs[0], original: inputs[1], ids: ids, bank: bank, rng: &rng)
        }
        var updated = bank
        updated.update(ids: ids, embeddings: o)
        for (r, id) in ids.enumerated() {
            let e = Array(updated.entry(id))
            #expect(abs(e.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
            let expected = (0..<4).map { 0.5 * bank.entries[id * 4 + $0] + 0.5 * o.storage[r * 4 + $0] }
            let norm = expected.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for j in 0..<4 { #expect(abs(e[j] - expected[j] / norm) < 1e-5) }
        }
        #expect(Array(updated.entry(0)) == Array(bank.entry(0)))
    }

    @Test("PIRL's NCE: scoring the whole bank with matrix products equals scoring each candidate, repeated candidates included")
    func memoryBankPaths() {
        var check = Check(seed: 16)
        let bank = MemoryBank(instances: 300, dimension: 16, rng: &check.rng)
        let t = Self.unit(check.tensor([8, 16])), o = Self.unit(check.tensor([8, 16]))
        let k = 40
        // Each row: its own entry, then k draws with replacement (some twice, as the sampler may).
        let candidates = (0..<8).flatMap { i in [i * 7] + (0..<k).map { _ in check.rng.index(below: 300) } }
        let nce = MemoryBankNCELoss(temperature: 0.1, negatives: k, lambda: 0.3)
        #expect(MemoryBankNCELoss.scoresWholeBank(rows: 8, candidates: k + 1, instances: 300))
        #expect(!MemoryBankNCELoss.scoresWholeBank(rows: 8, candidates: k + 1, instances: 1_000_000))
        let dense = nce.loss(transformed: t, original: o, candidates: candidates, bank: bank, wholeBank: true)
        let scattered = nce.loss(transformed: t, original: o, candidates: candidates, bank: bank, wholeBank: false)
        #expect(abs(dense.loss - scattered.loss) < 1e-5 * max(1, abs(scattered.loss)), "\(dense.loss) vs \(scattered.loss)")
        #expect(abs(dense.health.accuracy - scattered.health.accuracy) < 1e-6)
        for (a, b) in zip(dense.gradients, scattered.gradients) {
            let worst = zip(a.storage, b.storage).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-5, "largest gradient difference \(worst)")
            #expect(b.storage.contains { abs($0) > 1e-3 }, "the gradients are not all zero")
        }
    }

    @Test("VICReg: gradients with the variance hinge active, and its value on a known case")
    func vicreg() {
        var check = Check(seed: 15)
        let a = check.tensor([6, 3], scale: 0.3), b = check.tensor([6, 3], scale: 0.3)
        Self.checkGradients([a, b], epsilon: 1e-3, tolerance: 2e-2) { VICRegLoss()($0[0], $0[1]) }
        // Identical views with zero variance: invariance 0, variance term 25·2·(1 − √ε), covariance 0.
        let collapsed = Tensor(shape: [4, 2], storage: [Float](repeating: 0.5, count: 8))
        let expected: Float = 25 * 2 * (1 - Float(1e-4).squareRoot())
        #expect(abs(VICRegLoss()(collapsed, collapsed).loss - expected) < 1e-3)
    }

    @Test("cross-modal InfoNCE in both directions")
    func crossModal() {
        var check = Check(seed: 16)
        let v = Self.unit(check.tensor([4, 5])), a = Self.unit(check.tensor([4, 5]))
        Self.checkGradients([v, a]) { CrossModalInfoNCELoss(temperature: 0.2)(video: $0[0], audio: $0[1]) }
        let origins = [SampleOrigin(source: 0, time: 0), SampleOrigin(source: 0, time: 0.3), SampleOrigin(source: 1, time: 0), SampleOrigin(source: 1, time: 50)]
        Self.checkGradients([v, a]) { CrossModalInfoNCELoss(temperature: 0.2, maskWindow: 1)(video: $0[0], audio: $0[1], origins: origins) }
    }

    @Test("health signals: perfect pairs vs collapse")
    func health() {
        var check = Check(seed: 17)
        let d = 16
        let z = Self.unit(check.tensor([32, d]))
        let perfect = InfoNCELoss(temperature: 0.1)(z, z)
        #expect(perfect.health.accuracy == 1)
        #expect(abs(perfect.health.positiveCosine - 1) < 1e-5 && abs(perfect.health.alignment) < 1e-6)
        // Random unit vectors: per-dimension std ≈ 1/√d.
        #expect(abs(perfect.health.embeddingStd - 1 / Float(d).squareRoot()) < 0.05)
        let same = Tensor(shape: [32, d], storage: (0..<(32 * d)).map { Float($0 % d) })
        let collapsed = InfoNCELoss()(Self.unit(same), Self.unit(same))
        #expect(collapsed.health.embeddingStd < 1e-4)
        #expect(collapsed.health.uniformity > perfect.health.uniformity)
    }
}

@Suite("Optimizers and gradient hygiene")
struct OptimizerTests {
    @Test("SGD with momentum and weight decay follows PyTorch's update rule")
    func sgd() {
        let p = Parameter(name: "w", shape: [2], value: [1, -2], decays: true)
        let sgd = SGD(momentum: 0.9, weightDecay: 0.1)
        var theta: [Double] = [1, -2], buffer: [Double] = [0, 0]
        for step in 0..<3 {
            let grad: [Double] = [0.5 + Double(step), -0.25]
            p.gradient = grad.map(Float.init)
            sgd.step([p], learningRate: 0.1)
            for i in 0..<2 {
                let g = grad[i] + 0.1 * theta[i]
                buffer[i] = step == 0 ? g : 0.9 * buffer[i] + g
                theta[i] -= 0.1 * buffer[i]
                #expect(abs(Double(p.value[i]) - theta[i]) < 1e-6)
            }
            #expect(p.gradient == [0, 0])
        }
        let bias = Parameter(name: "b", shape: [1], value: [1], decays: false)
        bias.gradient = [0]
        SGD(momentum: 0, weightDecay: 0.5).step([bias], learningRate: 1)
        #expect(bias.value == [1])
        SGD(momentum: 0, weightDecay: 0.5, decayAll: true).step([bias], learningRate: 1)
        #expect(bias.value == [0.5])
    }

    @Test("AdamW: bias-corrected first step moves each weight by lr, plus decoupled decay")
    func adamW() {
        let p = Parameter(name: "w", shape: [3], value: [1, 1, 1], decays: true)
        p.gradient = [2, -3, 1e-3]
        AdamW(weightDecay: 0.1).step([p], learningRate: 0.01)
        // First step: m̂/√v̂ = sign(g); decay first: 1 − 0.01·0.1·1.
        for (v, g) in zip(p.value, [Float(2), -3, 1e-3]) {
            #expect(abs(v - (0.999 - 0.01 * (g > 0 ? 1 : -1))) < 1e-4)
        }
    }

    @Test("warmup then constant; clipping; the non-finite guard")
    func hygiene() {
        let schedule = WarmupConstantSchedule(baseRate: 0.1, warmupSteps: 4)
        #expect([0, 1, 3, 4, 1_000_000].map { schedule.rate(at: $0) } == [0.025, 0.05, 0.1, 0.1, 0.1])
        let p = Parameter(name: "w", shape: [2], value: [0, 0], decays: true)
        p.gradient = [3, 4]
        #expect(GradientGuard.clip([p], maxNorm: 1) == 5)
        #expect(abs(GradientGuard.norm([p]) - 1) < 1e-6)
        #expect(GradientGuard.isFinite(loss: 1, [p]))
        p.gradient = [.nan, 0]
        #expect(!GradientGuard.isFinite(loss: 1, [p]))
        p.gradient = [0, 0]
        #expect(!GradientGuard.isFinite(loss: .infinity, [p]))
    }
}
