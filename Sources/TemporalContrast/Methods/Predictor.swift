/// The predictor of BYOL and SimSiam: Linear(d → hidden) → LayerNorm → ReLU → Linear(hidden → d).
///
/// The papers normalise the hidden layer with BatchNorm; LayerNorm normalises each row on its own,
/// so a step computes the same whether its batch is whole or split over ranks (BYOL trains without
/// batch statistics too: Richemond et al. 2020).
func makePredictor(dimension: Int, hidden: Int, prefix: String, rng: inout RandomSource) -> Sequential {
    Sequential([
        Linear(dimension, hidden, name: "\(prefix).fc1", rng: &rng),
        LayerNorm(features: hidden, name: "\(prefix).ln"),
        ReLU(),
        Linear(hidden, dimension, name: "\(prefix).fc2", rng: &rng),
    ])
}

/// The mean over rows of −cos(p_i, t_i) between predictions `p` and constant targets `t` (`[n, d]`),
/// and dL/dp. BYOL's 2 − 2·cos is 2·(1 + this).
public func negativeCosine(_ p: Tensor, _ t: Tensor) -> (loss: Float, gradient: Tensor) {
    precondition(p.shape == t.shape && p.rank == 2, "negative cosine: p and t must both be [n, d]")
    let n = p.batch, d = p.itemSize
    var grad = [Float](repeating: 0, count: n * d)
    var total: Double = 0
    for i in 0..<n {
        var pp: Float = 0, tt: Float = 0, pt: Float = 0
        for j in 0..<d {
            let a = p.storage[i * d + j], b = t.storage[i * d + j]
            pp += a * a
            tt += b * b
            pt += a * b
        }
        let np = max(pp.squareRoot(), 1e-12), nt = max(tt.squareRoot(), 1e-12)
        let cosine = pt / (np * nt)
        total -= Double(cosine)
        // d(−cos)/dp = −(t̂ − cos·p̂) / ‖p‖, averaged over rows.
        for j in 0..<d {
            grad[i * d + j] = -(t.storage[i * d + j] / nt - cosine * p.storage[i * d + j] / np) / np / Float(n)
        }
    }
    return (Float(total / Double(n)), Tensor(shape: [n, d], storage: grad))
}

/// Forward of the online network and the predictor on one view, with what backward needs.
struct PredictedView {
    let projection: Tensor
    let prediction: Tensor
    let record: EmbeddingNetwork.ForwardRecord
    let predictorCache: LayerCache

    init(_ view: Tensor, online: EmbeddingNetwork, predictor: Sequential) {
        (projection, record) = online.forward(view)
        (prediction, predictorCache) = predictor.forward(projection)
    }

    /// Backpropagates dL/dprediction (scaled) through the predictor and the online network.
    func backward(_ gradient: Tensor, scale: Float, online: EmbeddingNetwork, predictor: Sequential) {
        let g = scale == 1 ? gradient : gradient.scaled(by: scale)
        let dz = predictor.backward(g, cache: predictorCache, inputGradient: true)!
        online.backward(dz, record: record)
    }
}
