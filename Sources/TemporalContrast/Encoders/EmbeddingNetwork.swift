/// A backbone and its projection head: input → features (exported) → embedding (trained on).
public final class EmbeddingNetwork {
    public let architecture: BackboneArchitecture
    public let head: ProjectionHead
    public let backbone: Sequential
    public let projector: Sequential

    /// Parameter-name prefix ("" for the video network, "audio." for the audio one), so the
    /// networks of one learner never share a name in the optimizer state or a checkpoint.
    public let prefix: String

    public init(architecture: BackboneArchitecture, head: ProjectionHead = ProjectionHead(), prefix: String = "", rng: inout RandomSource) {
        self.architecture = architecture
        self.head = head
        self.prefix = prefix
        backbone = architecture.make(prefix: "\(prefix)backbone", rng: &rng)
        projector = head.make(input: architecture.featureDimension, prefix: "\(prefix)head", rng: &rng)
    }

    /// Every parameter, backbone first, in a fixed order (checkpoints and momentum rely on it).
    public var parameters: [Parameter] { backbone.parameters + projector.parameters }

    final class Cache {
        let backbone: LayerCache, projector: LayerCache
        init(backbone: LayerCache, projector: LayerCache) {
            self.backbone = backbone
            self.projector = projector
        }
    }

    /// An opaque record of one forward pass, for `backward`.
    public struct ForwardRecord {
        let cache: Cache
    }

    /// Embeddings of `input` plus what backward needs.
    public func forward(_ input: Tensor) -> (embedding: Tensor, record: ForwardRecord) {
        let (f, bc) = backbone.forward(input)
        let (z, pc) = projector.forward(f)
        return (z, ForwardRecord(cache: Cache(backbone: bc, projector: pc)))
    }

    /// Embeddings without recording (inference, momentum encoder).
    public func embed(_ input: Tensor) -> Tensor { projector.infer(backbone.infer(input)) }

    /// Backbone features (what downstream tasks use).
    public func features(_ input: Tensor) -> Tensor { backbone.infer(input) }

    /// Accumulates parameter gradients for dL/dembedding of one recorded forward pass.
    public func backward(_ gradEmbedding: Tensor, record: ForwardRecord) {
        let g = projector.backward(gradEmbedding, cache: record.cache.projector, inputGradient: true)!
        _ = backbone.backward(g, cache: record.cache.backbone, inputGradient: false)
    }

    /// A network of the same shape with a copy of this one's weights (the momentum encoder).
    public func copy() -> EmbeddingNetwork {
        var rng = RandomSource(seed: 0)
        let other = EmbeddingNetwork(architecture: architecture, head: head, prefix: prefix, rng: &rng)
        for (dst, src) in zip(other.parameters, parameters) { dst.value = src.value }
        return other
    }

    /// θ_self ← m·θ_self + (1 − m)·θ_online for every parameter (MoCo's key encoder update).
    public func momentumUpdate(from online: EmbeddingNetwork, momentum m: Float) {
        for (k, q) in zip(parameters, online.parameters) {
            k.value.withUnsafeMutableBufferPointer { kb in
                q.value.withUnsafeBufferPointer { qb in Vector.blend(kb.baseAddress!, m, qb.baseAddress!, 1 - m, count: kb.count) }
            }
        }
    }
}
