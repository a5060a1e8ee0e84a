import Foundation
import Testing
@testable import TemporalContrast

@Suite("Label-free health and the kNN monitor")
struct HealthTests {
    @Test("effective rank: 1 for identical rows, d for orthonormal rows, 2 for two equal directions")
    func effectiveRank() {
        let d = 8
        let same = (0..<20).flatMap { _ in (0..<d).map { Float($0 + 1) } }
        #expect(abs(EffectiveRank.of(same, dimension: d) - 1) < 1e-3)
        var identity = [Float](repeating: 0, count: d * d)
        for i in 0..<d { identity[i * d + i] = 1 }
        #expect(abs(EffectiveRank.of(identity, dimension: d) - Float(d)) < 1e-3)
        var two: [Float] = []
        for i in 0..<40 { two += (0..<d).map { j in Float(j == i % 2 ? 1 : 0) } }
        #expect(abs(EffectiveRank.of(two, dimension: d) - 2) < 1e-3)
        #expect(EffectiveRank.of([1, 2, 3], dimension: 3).isNaN)
    }

    @Test("Jacobi eigenvalues of a symmetric matrix match its trace and a known spectrum")
    func eigenvalues() {
        // [[2,1],[1,2]] has eigenvalues 1 and 3.
        var a: [Double] = [2, 1, 1, 2]
        let e = SymmetricEigenvalues.of(&a, size: 2).sorted()
        #expect(abs(e[0] - 1) < 1e-12 && abs(e[1] - 3) < 1e-12)
        var rng = RandomSource(seed: 3)
        let m = 12
        var x = [Double](repeating: 0, count: m * m)
        for i in 0..<m { for j in i..<m { let v = Double(rng.normal()); x[i * m + j] = v; x[j * m + i] = v } }
        let trace = (0..<m).reduce(0) { $0 + x[$1 * m + $1] }
        let values = SymmetricEigenvalues.of(&x, size: m)
        #expect(abs(values.reduce(0, +) - trace) < 1e-9)
    }

    /// Embeddings of `images` random 16×16 frames through `network`, with the std ratio.
    static func signals(_ network: EmbeddingNetwork, rng: inout RandomSource, batch: Int = 16) -> (z: Tensor, stdRatio: Float) {
        let x = Tensor(shape: [batch, 16, 16, 3], storage: (0..<(batch * 16 * 16 * 3)).map { _ in rng.normal() })
        let z = network.embed(x)
        return (z, ContrastiveHealth.embeddingStd(z) * Float(z.itemSize).squareRoot())
    }

    @Test("collapse alarm: a constant encoder raises it within M steps; a randomly initialised one never does")
    func collapseAlarm() {
        var rng = RandomSource(seed: 11)
        let random = EmbeddingNetwork(architecture: .reference, head: ProjectionHead(hidden: 32, output: 16), rng: &rng)
        let constant = random.copy()
        for p in constant.parameters { for i in p.value.indices { p.value[i] = 0 } }
        // Only the last bias survives: every input maps to the same vector.
        let last = constant.parameters.last!
        for i in last.value.indices { last.value[i] = Float(i % 3) - 1 }
        let m = 10
        for (network, expectAlarm) in [(constant, true), (random, false)] {
            var detector = CollapseDetector(minStdRatio: 0.05, minEffectiveRank: 1.5, steps: m)
            var window: [Float] = []
            var raisedAt: Int?
            for step in 1...(3 * m) {
                let (z, ratio) = Self.signals(network, rng: &rng)
                window = Array((window + z.storage).suffix(128 * z.itemSize))
                let rank = EffectiveRank.of(window, dimension: z.itemSize)
                if detector.observe(step: step, stdRatio: ratio, effectiveRank: rank), raisedAt == nil { raisedAt = step }
            }
            if expectAlarm {
                #expect(raisedAt.map { $0 <= m } == true, "constant encoder: alarm at \(String(describing: raisedAt))")
            } else {
                #expect(raisedAt == nil && !detector.alarm, "random encoder raised the alarm at \(String(describing: raisedAt))")
            }
        }
    }

    @Test("the alarm clears when the signals recover, and waits M steps again")
    func alarmClears() {
        var d = CollapseDetector(minStdRatio: 0.1, minEffectiveRank: 2, steps: 3)
        let r1 = d.observe(step: 1, stdRatio: 0.01, effectiveRank: .nan)
        let r2 = d.observe(step: 2, stdRatio: 0.01, effectiveRank: .nan)
        let r3 = d.observe(step: 3, stdRatio: 0.01, effectiveRank: .nan)
        #expect(!r1 && !r2 && r3 && d.alarm)
        let r4 = d.observe(step: 4, stdRatio: 0.5, effectiveRank: 10)
        #expect(!r4 && !d.alarm)
        let r5 = d.observe(step: 5, stdRatio: 0.5, effectiveRank: 1.2)
        #expect(!r5 && d.belowSince == 5)
    }

    @Test("weighted kNN: separable clusters are classified right, shuffled labels near chance")
    func weightedKNN() {
        var rng = RandomSource(seed: 5)
        let d = 6, perClass = 15, classes = 3
        var features: [Float] = [], labels: [Int] = []
        for c in 0..<classes {
            for _ in 0..<perClass {
                features += (0..<d).map { j in (j == c ? 4 : 0) + 0.3 * rng.normal() }
                labels.append(c)
            }
        }
        #expect(WeightedKNN.leaveOneOutAccuracy(features: features, dimension: d, labels: labels, k: 5, temperature: 0.07) > 0.95)
        var shuffled = labels
        for i in stride(from: shuffled.count - 1, to: 0, by: -1) { shuffled.swapAt(i, rng.index(below: i + 1)) }
        #expect(WeightedKNN.leaveOneOutAccuracy(features: features, dimension: d, labels: shuffled, k: 5, temperature: 0.07) < 0.7)
    }

    @Test("the chance line is ln(K + 1) for K unmasked negatives")
    func chanceLoss() {
        var rng = RandomSource(seed: 9)
        let n = 8, d = 4
        let a = L2Normalize().infer(Tensor(shape: [n, d], storage: (0..<(n * d)).map { _ in rng.normal() }))
        let b = L2Normalize().infer(Tensor(shape: [n, d], storage: (0..<(n * d)).map { _ in rng.normal() }))
        // InfoNCE over 2n views: each row has 2n − 2 negatives and its positive.
        let r = InfoNCELoss(temperature: 0.1)(a, b)
        #expect(abs(r.health.chanceLoss - Float(log(Double(2 * n - 1)))) < 1e-5)
        let cross = CrossModalInfoNCELoss(temperature: 0.1)(video: a, audio: b)
        #expect(abs(cross.health.chanceLoss - Float(log(Double(n)))) < 1e-5)
    }
}
