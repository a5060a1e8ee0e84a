/// What `Learner` trains and how.
public struct LearnerConfig: Sendable, Equatable {
    public enum Objective: String, Sendable, CaseIterable { case moco, infonce, vicreg }
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

    public init() {}

    var head: ProjectionHead { ProjectionHead(hidden: hidden, output: embedding, normalize: objective != .vicreg) }
}

/// The daemon's learner: a video encoder trained on image pairs (temporal and tracked) with the
/// configured objective, and an audio encoder trained with the video encoder on audio-video pairs
/// (cross-modal InfoNCE), one optimizer step over both per batch. Its whole state round-trips
/// through `state()` and `restore(_:)`.
public final class Learner {
    public let config: LearnerConfig
    public let video: EmbeddingNetwork
    public let videoKey: EmbeddingNetwork?
    public let audio: EmbeddingNetwork?
    public private(set) var queue: KeyQueue?
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
        videoKey = config.objective == .moco ? video.copy() : nil
        audio = config.audioWeight > 0 ? EmbeddingNetwork(architecture: .audio, head: config.head, prefix: "audio.", rng: &rng) : nil
        queue = config.objective == .moco ? KeyQueue(randomCapacity: config.queue, dimension: config.embedding, rng: &rng) : nil
        switch config.optimizer {
        case .sgd: optimizer = SGD(momentum: config.momentum, weightDecay: config.weightDecay)
        case .adamw: optimizer = AdamW(weightDecay: config.weightDecay)
        }
    }

    /// Trained parameters (video then audio), in a fixed order.
    public var parameters: [Parameter] { video.parameters + (audio?.parameters ?? []) }

    /// One optimizer step on `batch`, alone.
    public func train(_ batch: Batch) -> Report { train(batch, distributed: nil) }

    /// A rank's part in a data-parallel step: the collective, the header every rank agreed on
    /// (`StepHeader.exchange`), and whether MoCo keys are gathered (off only to show, in a test,
    /// that the ranks' queues then diverge).
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
    /// Each objective's gradient is scaled so that the sum over ranks is the gradient of the
    /// global loss: MoCo's per-query loss by local ÷ global pairs; in-batch objectives (InfoNCE,
    /// VICReg, cross-modal) are computed on the embeddings of every rank, gathered, and each rank
    /// backpropagates its own rows. One allreduce sums the flat gradient (and the losses); the
    /// non-finite guard, the clip on the global norm and the optimizer step then see the same
    /// values on every rank, and so do the MoCo keys, gathered in rank order before they are
    /// enqueued. A rank with no examples contributes zero gradient and takes part in every
    /// collective all the same. Alone (`distributed` nil) every scale is 1 and every gather the
    /// identity, so the arithmetic is exactly that of a single process.
    public func train(_ batch: Batch, distributed: DistributedStep?) -> Report {
        let collective = distributed?.collective
        let ranks = collective?.size ?? 1
        var report = Report(step: step, loss: 0, learningRate: 0, skipped: false)
        var keys: Tensor?
        // Loss terms as this rank's share of the global loss (summed over ranks below).
        var imageShare: Float?, audioShare: Float?

        let localImages = batch.positives == nil ? 0 : batch.anchors?.batch ?? 0
        let globalImages = distributed?.header.imagePairs ?? localImages
        if globalImages > 1 {
            let origins = batch.imageOrigins.isEmpty ? nil : batch.imageOrigins
            let result: ObjectiveResult?
            switch config.objective {
            case .moco:
                videoKey!.momentumUpdate(from: video, momentum: config.keyMomentum)
                if localImages > 0, let anchors = batch.anchors, let positives = batch.positives {
                    let (q, record) = video.forward(anchors)
                    let k = videoKey!.embed(positives)
                    keys = k
                    let r = MoCoLoss(temperature: config.temperature, maskWindow: config.maskWindow)(query: q, key: k, queue: queue!, origins: origins)
                    let share = Float(localImages) / Float(globalImages)
                    video.backward(ranks > 1 ? r.gradients[0].scaled(by: share) : r.gradients[0], record: record)
                    imageShare = r.loss * share
                    report.embeddings = q
                    result = r
                } else {
                    imageShare = 0
                    result = nil
                }
            case .infonce, .vicreg:
                let q = batch.anchors.map { video.forward($0) }, z = batch.positives.map { video.forward($0) }
                let all = Gathered(collective, q?.embedding, z?.embedding, origins: batch.imageOrigins, width: config.embedding)
                let r = config.objective == .infonce
                    ? InfoNCELoss(temperature: config.temperature, maskWindow: config.maskWindow)(all.first, all.second, origins: all.origins)
                    : VICRegLoss()(all.first, all.second)
                if let q, let z {
                    video.backward(all.ownRows(of: r.gradients[0]), record: q.record)
                    video.backward(all.ownRows(of: r.gradients[1]), record: z.record)
                    report.embeddings = q.embedding
                }
                imageShare = r.loss / Float(ranks)
                result = r
            }
            report.imageLoss = result?.loss
            report.health = result?.health
        }
        let localAudio = batch.mels == nil ? 0 : batch.frames?.batch ?? 0
        let globalAudio = distributed?.header.audioPairs ?? localAudio
        if let audio, globalAudio > 1 {
            let v = batch.frames.map { video.forward($0) }, a = batch.mels.map { audio.forward($0) }
            let normalize = L2Normalize()
            // VICReg's head is unnormalised; the cross-modal loss works on cosines either way.
            let vn = v.map { config.objective == .vicreg ? normalize.forward($0.embedding) : ($0.embedding, nil) }
            let an = a.map { config.objective == .vicreg ? normalize.forward($0.embedding) : ($0.embedding, nil) }
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
            if config.objective == .moco, globalImages > 1 {
                if let collective, ranks > 1, distributed?.gatherKeys ?? true {
                    enqueueGathered(keys, origins: batch.imageOrigins, collective: collective)
                } else if let keys {
                    queue!.enqueue(keys, origins: batch.imageOrigins.isEmpty ? nil : batch.imageOrigins)
                }
            }
        }
        step += 1
        return report
    }

    /// MoCo keys of every rank, with their origins, enqueued in rank order (facebookresearch/moco's
    /// concat_all_gather), so every rank's queue stays identical.
    private func enqueueGathered(_ keys: Tensor?, origins: [SampleOrigin], collective: Collective) {
        let d = config.embedding
        let rows = keys?.batch ?? 0
        let parts = collective.allgather(keys?.storage ?? [])
        let originParts = collective.allgather(Gathered.flatten(origins, rows: rows))
        let all = parts.flatMap { $0 }
        guard all.count >= d else { return }
        queue!.enqueue(Tensor(shape: [all.count / d, d], storage: all), origins: Gathered.unflatten(originParts.flatMap { $0 }))
    }

    // MARK: - State

    /// Checkpoint name prefixes: "video.", "video_key.", and none for the audio network, whose
    /// parameter names already start with "audio.".
    private var networks: [(String, EmbeddingNetwork)] {
        var n: [(String, EmbeddingNetwork)] = [("video.", video)]
        if let videoKey { n.append(("video_key.", videoKey)) }
        if let audio { n.append(("", audio)) }
        return n
    }

    /// Every tensor and counter training needs to continue exactly, as safetensors: networks'
    /// parameters under "video.<name>", "video_key.<name>" and "audio.<name>", optimizer state under "optimizer.<key>", the key queue
    /// (times as float64 so they survive exactly: masking compares them with the window), and counters in the metadata.
    public func state() -> SafeTensors {
        var file = SafeTensors()
        for (label, net) in networks {
            for p in net.parameters { file.set("\(label)\(p.name)", shape: p.shape, values: p.value) }
        }
        for key in optimizer.state.keys.sorted() {
            let values = optimizer.state[key]!
            file.set("optimizer.\(key)", shape: [values.count], values: values)
        }
        if let queue {
            file.set("queue.keys", shape: [queue.capacity, queue.dimension], values: queue.keys)
            file.set("queue.sources", shape: [queue.capacity], values: queue.origins.map { Float($0.source) })
            file.set("queue.times", shape: [queue.capacity], doubles: queue.origins.map(\.time))
            file.metadata["queue.write_index"] = String(queue.writeIndex)
            file.metadata["queue.count"] = String(queue.count)
        }
        file.metadata["format_version"] = Self.formatVersion
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
    /// the key queue's size and indices, and every counter's range. On error the learner is as
    /// before, so the caller may try an older checkpoint.
    public func restore(_ file: SafeTensors) throws(RestoreError) {
        func fail(_ m: String) -> RestoreError { RestoreError(description: "checkpoint does not match this model: \(m)") }
        func floats(_ name: String, count: Int, shape: [Int]? = nil) throws(RestoreError) -> [Float] {
            guard let e = file[name] else { throw fail("missing \(name)") }
            guard e.dtype == .f32 else { throw fail("\(name) is \(e.dtype.rawValue), expected F32") }
            if let shape, e.shape != shape { throw fail("\(name) has shape \(e.shape), expected \(shape)") }
            guard e.values.count == count else { throw fail("\(name) has \(e.values.count) values, expected \(count)") }
            guard e.values.allSatisfy(\.isFinite) else { throw fail("\(name) holds NaN or infinite values") }
            return e.values
        }
        func counter(_ key: String, default value: Int? = nil, in range: ClosedRange<Int>) throws(RestoreError) -> Int {
            guard let text = file.metadata[key] else {
                if let value { return value }
                throw fail("metadata has no \(key)")
            }
            guard let n = Int(text), range.contains(n) else { throw fail("metadata \(key) = \(text.prefix(40)) is not an integer in \(range.lowerBound)...\(range.upperBound)") }
            return n
        }
        let version = file.metadata["format_version"] ?? "missing"
        guard version == Self.formatVersion else { throw fail("format_version \(version.prefix(40)), expected \(Self.formatVersion)") }
        let newStep = try counter("step", in: 0...Int(Int64.max / 2))
        let newSkipped = try counter("skipped_updates", default: 0, in: 0...newStep)
        let newOptimizerSteps = try counter("optimizer.steps", default: 0, in: 0...newStep)

        var values: [(Parameter, [Float])] = []
        for (label, net) in networks {
            for p in net.parameters { values.append((p, try floats("\(label)\(p.name)", count: p.count, shape: p.shape))) }
        }
        let counts = Dictionary(parameters.map { ($0.name, $0.count) }, uniquingKeysWith: { a, _ in a })
        let stateKinds = optimizer is AdamW ? ["adam_m.", "adam_v."] : ["momentum."]
        var newState: [String: [Float]] = [:]
        for name in file.names where name.hasPrefix("optimizer.") {
            let key = String(name.dropFirst("optimizer.".count))
            guard let kind = stateKinds.first(where: { key.hasPrefix($0) }), let count = counts[String(key.dropFirst(kind.count))] else {
                throw fail("\(name) is not state of this model's \(optimizer is AdamW ? "adamw" : "sgd") optimizer")
            }
            newState[key] = try floats(name, count: count)
        }
        var newQueue: KeyQueue?
        if let q = queue {
            let keys = try floats("queue.keys", count: q.capacity * q.dimension, shape: [q.capacity, q.dimension])
            let sources = try floats("queue.sources", count: q.capacity)
            guard let times = file["queue.times"], times.dtype == .f64, times.doubles.count == q.capacity, times.doubles.allSatisfy(\.isFinite) else {
                throw fail("queue.times must be \(q.capacity) finite F64 values")
            }
            // Source ids are 24-bit hashes, or -1 for the initial random keys.
            guard sources.allSatisfy({ $0 >= -1 && $0 < 16_777_216 && $0.rounded() == $0 }) else { throw fail("queue.sources holds values that are not source ids") }
            let w = try counter("queue.write_index", in: 0...(q.capacity - 1))
            let c = try counter("queue.count", in: 0...q.capacity)
            let origins = (0..<q.capacity).map { SampleOrigin(source: Int(sources[$0]), time: times.doubles[$0]) }
            newQueue = KeyQueue(capacity: q.capacity, dimension: q.dimension, keys: keys, origins: origins, writeIndex: w, count: c)
        }
        // Validated: now change state.
        for (p, v) in values { p.value = v }
        optimizer.state = newState
        optimizer.steps = newOptimizerSteps
        if let newQueue { queue = newQueue }
        step = newStep
        skippedUpdates = newSkipped
    }

    /// Whether every trained parameter is finite (a checkpoint of anything else would be garbage).
    public var parametersAreFinite: Bool {
        networks.allSatisfy { $0.1.parameters.allSatisfy { $0.value.allSatisfy(\.isFinite) } }
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
