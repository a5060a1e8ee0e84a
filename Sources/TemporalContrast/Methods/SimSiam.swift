/// SimSiam (Chen & He 2021): like BYOL without the target network: the predictor's output for one
/// view regresses the online projection of the other, held constant (stop-gradient). Symmetric:
/// L = ½·(−cos(p₁, z₂)) + ½·(−cos(p₂, z₁)), averaged over pairs; −1 at its minimum.
///
/// Distributed: a per-pair loss weighted by the rank's share.
final class SimSiam: JointEmbeddingMethod {
    let predictor: Sequential

    init(hidden: Int, embedding: Int, rng: inout RandomSource) {
        predictor = makePredictor(dimension: embedding, hidden: hidden, prefix: "simsiam.predictor", rng: &rng)
    }

    var parameters: [Parameter] { predictor.parameters }

    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep {
        guard let (a, b) = views.pair else { return .none }
        let first = PredictedView(a, online: online, predictor: predictor), second = PredictedView(b, online: online, predictor: predictor)
        // The projections as constants: the stop-gradient.
        let (l1, g1) = negativeCosine(first.prediction, second.projection)
        let (l2, g2) = negativeCosine(second.prediction, first.projection)
        let scale = 0.5 * (context.ranks > 1 ? context.share : 1)
        first.backward(g1, scale: scale, online: online, predictor: predictor)
        second.backward(g2, scale: scale, online: online, predictor: predictor)
        let loss = 0.5 * (l1 + l2)
        return MethodStep(loss: loss, share: loss * context.share, health: .raw(loss: loss, first.projection, second.projection),
                          embeddings: first.projection)
    }
}
