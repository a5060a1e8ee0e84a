/// BYOL (Grill et al. 2020): the online network and a predictor regress the projection of the
/// other view by a target network, an exponential moving average of the online one; no
/// negatives. Symmetric: L = (2 − 2·cos(q(z₁), z′₂)) + (2 − 2·cos(q(z₂), z′₁)), averaged over pairs,
/// the target projections z′ constant. The target follows the online network after every update
/// with `byol_momentum` (0.996; the paper raises it towards 1 over a fixed schedule, which an
/// open-ended stream does not have).
///
/// Distributed: a per-pair loss weighted by the rank's share; the target's update is the same on
/// every rank, whose parameters are the same.
final class BYOL: JointEmbeddingMethod {
    let target: EmbeddingNetwork
    let predictor: Sequential
    let momentum: Float

    init(online: EmbeddingNetwork, hidden: Int, momentum: Float, embedding: Int, rng: inout RandomSource) {
        target = online.copy()
        predictor = makePredictor(dimension: embedding, hidden: hidden, prefix: "byol.predictor", rng: &rng)
        self.momentum = momentum
    }

    var parameters: [Parameter] { predictor.parameters }

    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep {
        guard let (a, b) = views.pair else { return .none }
        let first = PredictedView(a, online: online, predictor: predictor), second = PredictedView(b, online: online, predictor: predictor)
        let targetA = target.embed(a), targetB = target.embed(b)
        let (l1, g1) = negativeCosine(first.prediction, targetB)
        let (l2, g2) = negativeCosine(second.prediction, targetA)
        // 2 − 2·cos per term: twice the negative cosine's gradient.
        let scale = 2 * (context.ranks > 1 ? context.share : 1)
        first.backward(g1, scale: scale, online: online, predictor: predictor)
        second.backward(g2, scale: scale, online: online, predictor: predictor)
        let loss = 4 + 2 * (l1 + l2)
        return MethodStep(loss: loss, share: loss * context.share, health: .raw(loss: loss, first.projection, second.projection),
                          embeddings: first.projection)
    }

    func didUpdate(online: EmbeddingNetwork, context: MethodContext) {
        target.momentumUpdate(from: online, momentum: momentum)
    }

    func save(into file: inout SafeTensors) {
        for p in target.parameters { file.set("byol_target.\(p.name)", shape: p.shape, values: p.value) }
    }

    func restorer(from file: StateReader) throws(Learner.RestoreError) -> () -> Void {
        let values = try file.parameters(target.parameters, prefix: "byol_target.")
        return { for (p, v) in values { p.value = v } }
    }
}
