import Glibc

/// PIRL's memory bank: one unit vector per instance of a finite corpus, updated by momentum
/// (m ← normalise(μ·m + (1 − μ)·f)) when the instance is seen again.
public struct MemoryBank: Sendable, Equatable {
    public let instances: Int
    public let dimension: Int
    public var momentum: Float
    public private(set) var entries: [Float]

    public init(instances: Int, dimension: Int, momentum: Float = 0.5, rng: inout RandomSource) {
        precondition(instances > 1 && dimension > 0, "MemoryBank needs at least two instances")
        self.instances = instances
        self.dimension = dimension
        self.momentum = momentum
        entries = [Float](repeating: 0, count: instances * dimension)
        for i in 0..<instances { setUnit(i, (0..<dimension).map { _ in rng.normal() }) }
    }

    /// Restores a bank from checkpointed entries.
    public init(instances: Int, dimension: Int, momentum: Float, entries: [Float]) {
        precondition(entries.count == instances * dimension)
        self.instances = instances
        self.dimension = dimension
        self.momentum = momentum
        self.entries = entries
    }

    public func entry(_ i: Int) -> ArraySlice<Float> { entries[(i * dimension)..<((i + 1) * dimension)] }

    private mutating func setUnit(_ i: Int, _ v: [Float]) {
        let norm = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        for j in 0..<dimension { entries[i * dimension + j] = v[j] / norm }
    }

    /// Momentum update of the entries of `ids` with the rows of `embeddings` (no gradient).
    public mutating func update(ids: [Int], embeddings: Tensor) {
        for (r, id) in ids.enumerated() {
            let mixed = (0..<dimension).map { momentum * entries[id * dimension + $0] + (1 - momentum) * embeddings.storage[r * dimension + $0] }
            setUnit(id, mixed)
        }
    }
}

/// PIRL's NCE against a memory bank (Misra & van der Maaten 2020), in its softmax form:
/// for instance i with bank entry m_i, L = λ·CE(m_i | g(transformed)) + (1 − λ)·CE(m_i | f(original)),
/// where each CE scores the positive m_i against `negatives` bank entries drawn at random (never i)
/// using cosine / T. Inputs: `transformed` = g(v_It) and `original` = f(v_I), `[n, d]` unit rows.
/// Returns [dL/dtransformed, dL/doriginal]. Call `MemoryBank.update` with `original` afterwards.
public struct MemoryBankNCELoss: Sendable {
    public var temperature: Float
    public var negatives: Int
    public var lambda: Float

    public init(temperature: Float = 0.07, negatives: Int = 4096, lambda: Float = 0.5) {
        self.temperature = temperature
        self.negatives = negatives
        self.lambda = lambda
    }

    /// `excluded(row, entry)`: entries that may not be row's negatives (likely the same content);
    /// after `negatives` × 8 refused draws a row takes what it gets. `rowRandom(row)`, when given,
    /// draws that row's negatives instead of `rng` (so a row's draws do not depend on the rows
    /// before it: a distributed step draws what one process would).
    public func callAsFunction(
        transformed: Tensor, original: Tensor, ids: [Int], bank: MemoryBank, rng: inout RandomSource,
        rowRandom: ((Int) -> RandomSource)? = nil, excluded: ((Int, Int) -> Bool)? = nil
    ) -> ObjectiveResult {
        let n = transformed.batch, d = bank.dimension
        precondition(original.shape == transformed.shape && d == transformed.itemSize && ids.count == n)
        let k = min(negatives, bank.instances - 1)
        // Candidates per row: the positive entry first, then k random others (indices only: a
        // copy of their vectors would be n·(k + 1)·d floats).
        var candidates = [Int](repeating: 0, count: n * (k + 1))
        for i in 0..<n {
            var chosen = [ids[i]]
            var refused = 0
            var own = rowRandom?(i)
            while chosen.count < k + 1 {
                let c = own != nil ? own!.index(below: bank.instances) : rng.index(below: bank.instances)
                guard c != ids[i] else { continue }
                if let excluded, refused < 8 * k, excluded(i, c) {
                    refused += 1
                    continue
                }
                chosen.append(c)
            }
            for (slot, id) in chosen.enumerated() { candidates[i * (k + 1) + slot] = id }
        }
        return loss(transformed: transformed, original: original, candidates: candidates, bank: bank)
    }

    /// Whether `loss` scores every bank entry with two matrix products instead of each candidate
    /// with its own dot product: n·N scores cost far less through sgemm than n·(k + 1) scattered
    /// dots while the bank is at most 16 times the candidates, and the n × N buffer stays small.
    public static func scoresWholeBank(rows n: Int, candidates: Int, instances: Int) -> Bool {
        instances <= 16 * candidates && n * instances <= 1 << 24
    }

    /// The loss with each row's candidates given: `candidates` is `[n, k + 1]` bank indices, the
    /// row's own entry first. `wholeBank` (default: `scoresWholeBank`) picks how the scores and
    /// gradients are computed; both give the same values up to rounding.
    func loss(transformed: Tensor, original: Tensor, candidates: [Int], bank: MemoryBank, wholeBank: Bool? = nil) -> ObjectiveResult {
        let n = transformed.batch, d = bank.dimension, k = candidates.count / n - 1, entries = bank.instances
        precondition(candidates.count == n * (k + 1) && k >= 1)
        let dense = wholeBank ?? Self.scoresWholeBank(rows: n, candidates: k + 1, instances: entries)
        var health = ContrastiveHealth()
        var total: Float = 0
        var grads: [Tensor] = []
        var correctAll: Float = 0
        // dense: [n, N] scores of every entry, then the same buffer as [n, N] gradient weights.
        var all = dense ? [Float](repeating: 0, count: n * entries) : []
        for (view, weight) in [(transformed, lambda), (original, 1 - lambda)] {
            var logits = [Float](repeating: 0, count: n * (k + 1))
            if dense {
                GEMM.multiply(view.storage, bank.entries, into: &all, m: n, n: entries, k: d, transposeB: true, alpha: 1 / temperature)
                for i in 0..<n {
                    for c in 0...k { logits[i * (k + 1) + c] = all[i * entries + candidates[i * (k + 1) + c]] }
                }
            } else {
                view.storage.withUnsafeBufferPointer { vb in
                    bank.entries.withUnsafeBufferPointer { eb in
                        for i in 0..<n {
                            for c in 0...k {
                                let dot = Vector.dot(vb.baseAddress! + i * d, eb.baseAddress! + candidates[i * (k + 1) + c] * d, count: d)
                                logits[i * (k + 1) + c] = dot / temperature
                            }
                        }
                    }
                }
            }
            let (loss, correct, _) = logits.withUnsafeMutableBufferPointer {
                softmaxCrossEntropy($0.baseAddress!, rows: n, columns: k + 1, target: { _ in 0 }, scale: weight)
            }
            total += weight * Float(loss)
            correctAll += Float(correct) / Float(n) * weight
            // logits now hold dL/dlogit; dL/dview_i = Σ_c dL/dlogit_ic · m_c / T.
            var g = [Float](repeating: 0, count: n * d)
            if dense {
                all.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                for i in 0..<n {
                    for c in 0...k { all[i * entries + candidates[i * (k + 1) + c]] += logits[i * (k + 1) + c] }
                }
                GEMM.multiply(all, bank.entries, into: &g, m: n, n: d, k: entries, alpha: 1 / temperature)
            } else {
                g.withUnsafeMutableBufferPointer { gb in
                    bank.entries.withUnsafeBufferPointer { eb in
                        for i in 0..<n {
                            for c in 0...k {
                                let w = logits[i * (k + 1) + c] / temperature
                                Vector.axpy(w, eb.baseAddress! + candidates[i * (k + 1) + c] * d, gb.baseAddress! + i * d, count: d)
                            }
                        }
                    }
                }
            }
            grads.append(Tensor(shape: [n, d], storage: g))
        }
        health.loss = total
        health.chanceLoss = Float(log(Double(k + 1)))
        health.accuracy = correctAll
        var pos: Double = 0
        for i in 0..<n { for j in 0..<d { pos += Double(transformed.storage[i * d + j] * bank.entries[candidates[i * (k + 1)] * d + j]) } }
        health.positiveCosine = Float(pos / Double(n))
        health.describe(anchors: transformed, positives: original)
        return ObjectiveResult(loss: total, gradients: grads, health: health)
    }
}
