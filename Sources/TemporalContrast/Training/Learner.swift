/// What `Learner` trains and how.
public struct LearnerConfig: Sendable, Equatable {
    public typealias Objective = MethodKind
    public enum OptimizerKind: String, Sendable, CaseIterable { case sgd, adamw }

    public var video: BackboneArchitecture = .reference
    public var hidden = 256
    public var embedding = 128
    public var objective: Objective = .moco
    public var temperature: Float = 0.1
    public var queue = 4096
    public var keyMomentum: Float = 0.99
    /// Same-source negatives closer than this many seconds are masked (likely the same content).
    public var maskWindow: Double = 2
    /// Weight of the cross-modal loss on audio-video pairs; 0 trains no audio encoder.
    public var audioWeight: Float = 1
    public var optimizer: OptimizerKind = .sgd
    public var learningRate: Float = 0.03
    public var momentum: Float = 0.9
    public var weightDecay: Float = 1e-4
    public var warmupSteps = 200
    public var maxGradientNorm: Float = 5
    public var seed: UInt64 = 0
    /// The methods' own settings (`MethodKind.settings`).
    public var methodSettings = MethodSettings()

    public init() {}

    var head: ProjectionHead { ProjectionHead(hidden: hidden, output: embedding, normalize: objective.normalizesHead) }
}

/// The daemon's learner: a video encoder trained on image pairs (temporal and tracked) with the
/// configured method (`JointEmbeddingMethod`), and an audio encoder trained with the video encoder on audio-video pairs
/// (cross-modal InfoNCE), one optimizer step over both per batch. Its whole state round-trips
/// through `state()` and `restore(_:)`.
public final class Learner {
    public let config: LearnerConfig
    public let video: EmbeddingNetwork
    public let audio: EmbeddingNetwork?
    /// What trains the video encoder on image pairs, with its own state.
    public let method: JointEmbeddingMethod
    public let optimizer: Optimizer
    public private(set) var step = 0
    public private(set) var skippedUpdates = 0
    public static let formatVersion = "2"

    /// One step's inputs: image views `[n, s, s, 3]` (anchors and positives) and audio-video pairs
    /// (frames `[m, s, s, 3]`, log-mel `[m, bands, frames, 1]`), each with origins for masking.
    public struct Batch: Sendable {
        public var anchors: Tensor?
        public var positives: Tensor?
        public var imageOrigins: [SampleOrigin] = []
        public var frames: Tensor?
        public var mels: Tensor?
        public var audioOrigins: [SampleOrigin] = []

        public init() {}
    }

    public struct Report: Sendable {
        public var step: Int
        public var loss: Float
        public var imageLoss: Float?
        public var audioLoss: Float?
        public var health: ContrastiveHealth?
        /// The online encoder's embeddings of this step's anchors (`[n, d]`), for health signals
        /// measured over many steps (effective rank).
        public var embeddings: Tensor?
        public var learningRate: Float
        public var skipped: Bool
        /// Why the update was skipped: "loss" or the first parameter with a non-finite gradient.
        public var nonFinite: String?
    }

    public init(config: LearnerConfig) {
        self.config = config
        var rng = RandomSource(seed: config.seed)
        video = EmbeddingNetwork(architecture: config.video, head: config.head, rng: &rng)
        audio = config.audioWeight > 0 ? EmbeddingNetwork(architecture: .audio, head: config.head, prefix: "audio.", rng: &rng) : nil
        method = config.objective.make(config: config, online: video, rng: &rng)
        switch config.optimizer {
        case .sgd: optimizer = SGD(momentum: config.momentum, weightDecay: config.weightDecay)
        case .adamw: optimizer = AdamW(weightDecay: config.weightDecay)
        }
    }

    /// Trained parameters (video, the method's, audio), in a fixed order.
    public var parameters: [Parameter] { video.parameters + method.parameters + (audio?.parameters ?? []) }

    /// One optimizer step on `batch`, alone.
    public func train(_ batch: Batch) -> Report { train(batch, distributed: nil) }

    /// A rank's part in a data-parallel step: the collective, the header every rank agreed on
    /// (`StepHeader.exchange`), and whether the method's queue and bank updates are gathered (off
    /// only to show, in a test, that the ranks' queues then diverge).
    public struct DistributedStep {
        public var collective: Collective
        public var header: StepHeader
        public var gatherKeys = true

        public init(collective: Collective, header: StepHeader, gatherKeys: Bool = true) {
            self.collective = collective
            self.header = header
            self.gatherKeys = gatherKeys
        }
    }

    /// One optimizer step on `batch`; with `distributed`, this rank's part of a step over the
    /// examples of every rank, equivalent to one process stepping on all of them (rank order).
    ///
    /// The method computes this rank's share of the global image loss and its gradient (a
    /// per-pair loss weighted by local ÷ global pairs, or an in-batch loss on the gathered
    /// embeddings of every rank, each rank backpropagating its own rows); the cross-modal loss is
    /// in-batch too. One allreduce sums the flat gradient (and the losses); the non-finite guard,
    /// the clip on the global norm and the optimizer step then see the same values on every rank,
    /// and so does the method's update of its queues and banks. A rank with no examples contributes
    /// zero gradient and takes part in every collective all the same. Alone (`distributed` nil)
    /// every scale is 1 and every gather the identity, so the arithmetic is exactly that of a
    /// single process.
    public func train(_ batch: Batch, distributed: DistributedStep?) -> Report {
        let collective = distributed?.collective
        let ranks = collective?.size ?? 1
        var report = Report(step: step, loss: 0, learningRate: 0, skipped: false)
        // Loss terms as this rank's share of the global loss (summed over ranks below).
        var imageShare: Float?, audioShare: Float?

        let localImages = batch.positives == nil ? 0 : batch.anchors?.batch ?? 0
        let globalImages = distributed?.header.imagePairs ?? localImages
        let context = MethodContext(collective: collective, localPairs: localImages, globalPairs: globalImages,
                                    gatherUpdates: distributed?.gatherKeys ?? true, step: step)
        if globalImages > 1 {
            let views = ViewPairs(anchors: localImages > 0 ? batch.anchors : nil, positives: localImages > 0 ? batch.positives : nil, origins: batch.imageOrigins)
            let result = method.step(views, online: video, context: context)
            imageShare = result.share
            report.embeddings = result.embeddings
            report.imageLoss = result.loss
            report.health = result.health
        }
        let localAudio = batch.mels == nil ? 0 : batch.frames?.batch ?? 0
        let globalAudio = distributed?.header.audioPairs ?? localAudio
        if let audio, globalAudio > 1 {
            let v = batch.frames.map { video.forward($0) }, a = batch.mels.map { audio.forward($0) }
            let normalize = L2Normalize()
            // Non-contrastive heads are unnormalised; the cross-modal loss works on cosines either way.
            let raw = !config.objective.normalizesHead
            let vn = v.map { raw ? normalize.forward($0.embedding) : ($0.embedding, nil) }
            let an = a.map { raw ? normalize.forward($0.embedding) : ($0.embedding, nil) }
            let all = Gathered(collective, vn?.0, an?.0, origins: batch.audioOrigins, width: config.embedding)
            let result = CrossModalInfoNCELoss(temperature: config.temperature, maskWindow: config.maskWindow)(
                video: all.first, audio: all.second, origins: all.origins)
            if let v, let a, let vn, let an {
                var gv = all.ownRows(of: result.gradients[0]).scaled(by: config.audioWeight)
                var ga = all.ownRows(of: result.gradients[1]).scaled(by: config.audioWeight)
                if let vc = vn.1 { gv = normalize.backward(gv, cache: vc, inputGradient: true)! }
                if let ac = an.1 { ga = normalize.backward(ga, cache: ac, inputGradient: true)! }
                video.backward(gv, record: v.record)
                audio.backward(ga, record: a.record)
            }
            report.audioLoss = result.loss
            audioShare = result.loss / Float(ranks)
        }
        let parameters = self.parameters
        if let collective, ranks > 1 {
            // One allreduce: every gradient, then the two loss shares.
            var flat: [Float] = []
            flat.reserveCapacity(parameters.reduce(2) { $0 + $1.count })
            for p in parameters { flat += p.gradient }
            flat += [imageShare ?? 0, audioShare ?? 0]
            collective.allreduceSum(&flat)
            var offset = 0
            for p in parameters {
                p.gradient = Array(flat[offset..<(offset + p.count)])
                offset += p.count
            }
            if imageShare != nil { report.imageLoss = flat[offset] }
            if audioShare != nil { report.audioLoss = flat[offset + 1] }
        }
        let total = (report.imageLoss ?? 0) + config.audioWeight * (report.audioLoss ?? 0)
        report.loss = total
        let rate = WarmupConstantSchedule(baseRate: config.learningRate, warmupSteps: config.warmupSteps).rate(at: step)
        report.learningRate = rate
        if let what = GradientGuard.nonFinite(loss: total, parameters) {
            GradientGuard.zero(parameters)
            skippedUpdates += 1
            report.skipped = true
            report.nonFinite = what
        } else {
            if config.maxGradientNorm > 0 { GradientGuard.clip(parameters, maxNorm: config.maxGradientNorm) }
            optimizer.step(parameters, learningRate: rate)
            if globalImages > 1 { method.didUpdate(online: video, context: context) }
        }
        step += 1
        return report
    }

    // MARK: - State

    /// Checkpoint name prefixes: "video." for the video network, none for the audio network and
    /// the method's parameters, whose names are unique already ("audio.…").
    private var networks: [(String, [Parameter])] {
        var n: [(String, [Parameter])] = [("video.", video.parameters)]
        if let audio { n.append(("", audio.parameters)) }
        n.append(("", method.parameters))
        return n
    }

    /// Every tensor and counter training needs to continue exactly, as safetensors: networks'
    /// parameters under "video.<name>" and "audio.<name>", optimizer state under
    /// "optimizer.<key>", the method's state under its own names (MoCo: "video_key.<name>" and
    /// "queue.*"), and counters in the metadata.
    public func state() -> SafeTensors {
        var file = SafeTensors()
        for (label, parameters) in networks {
            for p in parameters { file.set("\(label)\(p.name)", shape: p.shape, values: p.value) }
        }
        for key in optimizer.state.keys.sorted() {
            let values = optimizer.state[key]!
            file.set("optimizer.\(key)", shape: [values.count], values: values)
        }
        method.save(into: &file)
        file.metadata["format_version"] = Self.formatVersion
        file.metadata["objective"] = config.objective.rawValue
        file.metadata["step"] = String(step)
        file.metadata["skipped_updates"] = String(skippedUpdates)
        file.metadata["optimizer.steps"] = String(optimizer.steps)
        return file
    }

    public struct RestoreError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Loads `state()` output back. Everything is checked before anything changes: each tensor's
    /// presence, dtype, shape, length and finiteness, the optimizer state of this optimizer only,
    /// the method's state, and every counter's range. On error the learner is as before, so the
    /// caller may try an older checkpoint.
    public func restore(_ file: SafeTensors) throws(RestoreError) {
        let reader = StateReader(file)
        let version = file.metadata["format_version"] ?? "missing"
        guard version == Self.formatVersion else { throw reader.fail("format_version \(version.prefix(40)), expected \(Self.formatVersion)") }
        // Checkpoints from before methods were named are MoCo's, InfoNCE's or VICReg's; their
        // tensors tell them apart, and a mismatch fails below with the tensor that is missing.
        if let saved = file.metadata["objective"], saved != config.objective.rawValue {
            throw reader.fail("it was trained with objective.kind = \(saved.prefix(40)), this model uses \(config.objective.rawValue)")
        }
        let newStep = try reader.counter("step", in: 0...Int(Int64.max / 2))
        let newSkipped = try reader.counter("skipped_updates", default: 0, in: 0...newStep)
        let newOptimizerSteps = try reader.counter("optimizer.steps", default: 0, in: 0...newStep)

        var values: [(Parameter, [Float])] = []
        for (label, parameters) in networks { values += try reader.parameters(parameters, prefix: label) }
        let counts = Dictionary(parameters.map { ($0.name, $0.count) }, uniquingKeysWith: { a, _ in a })
        let stateKinds = optimizer is AdamW ? ["adam_m.", "adam_v."] : ["momentum."]
        var newState: [String: [Float]] = [:]
        for name in file.names where name.hasPrefix("optimizer.") {
            let key = String(name.dropFirst("optimizer.".count))
            guard let kind = stateKinds.first(where: { key.hasPrefix($0) }), let count = counts[String(key.dropFirst(kind.count))] else {
                throw reader.fail("\(name) is not state of this model's \(optimizer is AdamW ? "adamw" : "sgd") optimizer")
            }
            newState[key] = try reader.floats(name, count: count)
        }
        let applyMethod = try method.restorer(from: reader)
        // Validated: now change state.
        for (p, v) in values { p.value = v }
        optimizer.state = newState
        optimizer.steps = newOptimizerSteps
        applyMethod()
        step = newStep
        skippedUpdates = newSkipped
    }

    /// Whether every trained parameter is finite (a checkpoint of anything else would be garbage).
    public var parametersAreFinite: Bool {
        networks.allSatisfy { $0.1.allSatisfy { $0.value.allSatisfy(\.isFinite) } }
    }
}

/// Embeddings of every rank concatenated in rank order (alone: this rank's own), with their
/// origins, and where this rank's rows start: the forward half of VICReg's FullGatherLayer. The
/// backward half is `ownRows(of:)`: every rank computes the same loss on the same gathered rows,
/// so the gradient of its own rows is its whole share.
struct Gathered {
    var first: Tensor
    var second: Tensor
    var origins: [SampleOrigin]?
    private var offset = 0
    private var rows = 0

    init(_ collective: Collective?, _ a: Tensor?, _ b: Tensor?, origins local: [SampleOrigin], width: Int) {
        rows = a?.batch ?? 0
        guard let collective, collective.size > 1 else {
            first = a ?? Tensor(zeros: [0, width])
            second = b ?? Tensor(zeros: [0, width])
            origins = local.isEmpty ? nil : local
            return
        }
        let firsts = collective.allgather(a?.storage ?? []), seconds = collective.allgather(b?.storage ?? [])
        let originParts = collective.allgather(Self.flatten(local, rows: rows))
        offset = firsts[..<collective.rank].reduce(0) { $0 + $1.count } / width
        let f = firsts.flatMap { $0 }, s = seconds.flatMap { $0 }
        first = Tensor(shape: [f.count / width, width], storage: f)
        second = Tensor(shape: [s.count / width, width], storage: s)
        origins = Self.unflatten(originParts.flatMap { $0 })
    }

    /// This rank's rows of a gradient with respect to the gathered embeddings.
    func ownRows(of gradient: Tensor) -> Tensor {
        gradient.batch == rows ? gradient : gradient.rows(offset..<(offset + rows))
    }

    /// Origins of `rows` embeddings as doubles (source, time, source, time, ...) for a collective;
    /// unknown origins (-1) when the batch carries none.
    static func flatten(_ origins: [SampleOrigin], rows: Int) -> [Double] {
        let known = origins.count == rows ? origins : Array(repeating: SampleOrigin(source: -1, time: 0), count: rows)
        return known.flatMap { [Double($0.source), $0.time] }
    }

    static func unflatten(_ values: [Double]) -> [SampleOrigin] {
        stride(from: 0, to: values.count - 1, by: 2).map { SampleOrigin(source: Int(values[$0]), time: values[$0 + 1]) }
    }
}

extension Tensor {
    /// Every element times `factor`.
    func scaled(by factor: Float) -> Tensor {
        var t = self
        for i in t.storage.indices { t.storage[i] *= factor }
        return t
    }
}
