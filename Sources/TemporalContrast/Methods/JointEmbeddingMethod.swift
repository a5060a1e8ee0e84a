/// A joint-embedding method: how two views of the same content train the video encoder.
///
/// A method owns what it needs beyond the online network (a momentum encoder, a key queue, a
/// memory bank, a predictor, prototypes, a centre) and provides one step on a batch of view pairs,
/// its health signals (in the step's result), its checkpoint tensors and their restore, and its
/// part in a distributed step. The `Learner` composes it with the cross-modal audio-video loss and
/// the optimizer. Methods are made by `MethodKind.make`; adding one touches `Methods/` only.
public protocol JointEmbeddingMethod: AnyObject {
    /// Parameters trained with the encoder (a predictor, prototypes), in a fixed order, with names
    /// unique in the learner (they are checkpointed under their own names). Empty for most.
    var parameters: [Parameter] { get }

    /// Forward, loss and backward on this rank's pairs: adds the gradient of this rank's share of
    /// the global loss to `online`'s parameters and to `parameters`.
    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep

    /// After the optimizer updated the weights (never after a skipped update): target networks,
    /// queues, banks, centres. In a distributed step every rank calls it with the same context.
    func didUpdate(online: EmbeddingNetwork, context: MethodContext)

    /// Tensors and counters beyond the learner's networks, for the checkpoint.
    func save(into file: inout SafeTensors)

    /// Checks this method's part of `file` and returns what loads it; throws without changing
    /// anything, so the learner can check everything before it changes anything.
    func restorer(from file: StateReader) throws(Learner.RestoreError) -> () -> Void

    /// Entries and capacity of a key queue or feature queue, for the status page (nil: none).
    var queueFill: (entries: Int, capacity: Int)? { get }
}

extension JointEmbeddingMethod {
    public var parameters: [Parameter] { [] }
    public func didUpdate(online: EmbeddingNetwork, context: MethodContext) {}
    public func save(into file: inout SafeTensors) {}
    public func restorer(from file: StateReader) throws(Learner.RestoreError) -> () -> Void { {} }
    public var queueFill: (entries: Int, capacity: Int)? { nil }
}

/// One step's image views: anchors and positives `[n, s, s, 3]` (nil when this rank has none in a
/// distributed step) with the origins of the anchors, for masking likely-same negatives.
public struct ViewPairs {
    public var anchors: Tensor?
    public var positives: Tensor?
    /// Empty when unknown.
    public var origins: [SampleOrigin]

    public init(anchors: Tensor?, positives: Tensor?, origins: [SampleOrigin] = []) {
        self.anchors = anchors
        self.positives = positives
        self.origins = origins
    }

    /// Both views, when this rank has pairs.
    public var pair: (Tensor, Tensor)? {
        guard let anchors, let positives, anchors.batch > 0 else { return nil }
        return (anchors, positives)
    }

    /// The origins, or nil when they are unknown (the losses' convention).
    public var knownOrigins: [SampleOrigin]? { origins.isEmpty ? nil : origins }
}

/// Where a step runs: alone, or as one rank of a data-parallel step.
public struct MethodContext {
    /// nil alone.
    public var collective: Collective?
    /// This rank's pairs and every rank's.
    public var localPairs: Int
    public var globalPairs: Int
    /// Whether queue and bank updates are gathered over the ranks (off only to show, in a test,
    /// that the ranks' states then diverge).
    public var gatherUpdates = true
    /// The learner's step counter (before this step).
    public var step: Int

    public init(collective: Collective? = nil, localPairs: Int, globalPairs: Int, gatherUpdates: Bool = true, step: Int) {
        self.collective = collective
        self.localPairs = localPairs
        self.globalPairs = globalPairs
        self.gatherUpdates = gatherUpdates
        self.step = step
    }

    public var ranks: Int { collective?.size ?? 1 }

    /// This rank's pairs over every rank's: the weight of a per-pair mean taken over local pairs,
    /// so that the ranks' gradients sum to the gradient of the global mean.
    public var share: Float { globalPairs == 0 ? 0 : Float(localPairs) / Float(globalPairs) }

    /// Rows gathered from every rank in rank order (alone: `local` itself), each `width` wide.
    public func gather(_ local: Tensor?, width: Int) -> Tensor {
        guard let collective, ranks > 1 else { return local ?? Tensor(zeros: [0, width]) }
        let all = collective.allgather(local?.storage ?? []).flatMap { $0 }
        return Tensor(shape: [all.count / width, width], storage: all)
    }

    /// `values` summed over ranks (alone: themselves).
    public func sum(_ values: [Float]) -> [Float] {
        guard let collective, ranks > 1 else { return values }
        var v = values
        collective.allreduceSum(&v)
        return v
    }
}

/// What a method's step returns.
public struct MethodStep {
    /// The loss this rank computed (over its pairs, or over every rank's for in-batch methods);
    /// nil when it computed none.
    public var loss: Float?
    /// This rank's share of the global loss; the learner sums the shares over ranks.
    public var share: Float
    public var health: ContrastiveHealth?
    /// The online network's embeddings of this rank's anchors (`[n, d]`), for health signals
    /// measured over many steps.
    public var embeddings: Tensor?

    public init(loss: Float?, share: Float, health: ContrastiveHealth? = nil, embeddings: Tensor? = nil) {
        self.loss = loss
        self.share = share
        self.health = health
        self.embeddings = embeddings
    }

    /// A rank with no pairs: no loss, no gradient.
    public static var none: MethodStep { MethodStep(loss: nil, share: 0) }
}

extension MethodStep {
    /// An in-batch objective on the embeddings of every rank: each rank forwards its own views,
    /// the embeddings are gathered (VICReg's FullGatherLayer), every rank computes the same loss
    /// and backpropagates its own rows, and its share is the loss over the number of ranks.
    static func inBatch(
        _ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext, width: Int,
        loss: (_ first: Tensor, _ second: Tensor, _ origins: [SampleOrigin]?) -> ObjectiveResult
    ) -> MethodStep {
        let q = views.pair.map { online.forward($0.0) }, z = views.pair.map { online.forward($0.1) }
        let all = Gathered(context.collective, q?.embedding, z?.embedding, origins: views.origins, width: width)
        let r = loss(all.first, all.second, all.origins)
        if let q, let z {
            online.backward(all.ownRows(of: r.gradients[0]), record: q.record)
            online.backward(all.ownRows(of: r.gradients[1]), record: z.record)
        }
        return MethodStep(loss: r.loss, share: r.loss / Float(context.ranks), health: r.health, embeddings: q?.embedding)
    }
}
