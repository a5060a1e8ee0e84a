/// VICReg (Bardes, Ponce & LeCun 2022) on the raw projections, distributed on the embeddings of
/// every rank (its FullGatherLayer).
final class VICReg: JointEmbeddingMethod {
    let loss: VICRegLoss
    let embedding: Int

    init(loss: VICRegLoss, embedding: Int) {
        self.loss = loss
        self.embedding = embedding
    }

    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep {
        .inBatch(views, online: online, context: context, width: embedding) { a, b, _ in loss(a, b) }
    }
}
