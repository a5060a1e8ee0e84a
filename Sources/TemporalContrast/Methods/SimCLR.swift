/// SimCLR's NT-Xent (Chen et al. 2020): in-batch InfoNCE over both views, every other embedding
/// of the batch a negative (same-source ones within the mask window masked). Distributed, on the
/// embeddings of every rank.
final class SimCLR: JointEmbeddingMethod {
    let loss: InfoNCELoss
    let embedding: Int

    init(temperature: Float, maskWindow: Double, embedding: Int) {
        loss = InfoNCELoss(temperature: temperature, maskWindow: maskWindow)
        self.embedding = embedding
    }

    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep {
        .inBatch(views, online: online, context: context, width: embedding) { loss($0, $1, origins: $2) }
    }
}
