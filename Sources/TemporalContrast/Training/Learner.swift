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

    public func train(_ batch: Batch) -> Report {
        var total: Float = 0
        var report = Report(step: step, loss: 0, learningRate: 0, skipped: false)
        var keys: Tensor?
        if let anchors = batch.anchors, let positives = batch.positives, anchors.batch > 1 {
            let origins = batch.imageOrigins.isEmpty ? nil : batch.imageOrigins
            let (q, record) = video.forward(anchors)
            let result: ObjectiveResult
            switch config.objective {
            case .moco:
                videoKey!.momentumUpdate(from: video, momentum: config.keyMomentum)
                let k = videoKey!.embed(positives)
                keys = k
                result = MoCoLoss(temperature: config.temperature, maskWindow: config.maskWindow)(query: q, key: k, queue: queue!, origins: origins)
                video.backward(result.gradients[0], record: record)
            case .infonce, .vicreg:
                let (z, record2) = video.forward(positives)
                result = config.objective == .infonce
                    ? InfoNCELoss(temperature: config.temperature, maskWindow: config.maskWindow)(q, z, origins: origins)
                    : VICRegLoss()(q, z)
                video.backward(result.gradients[0], record: record)
                video.backward(result.gradients[1], record: record2)
            }
            total += result.loss
            report.imageLoss = result.loss
            report.health = result.health
            report.embeddings = q
        }
        if let audio, let frames = batch.frames, let mels = batch.mels, frames.batch > 1 {
            let (v, vr) = video.forward(frames)
            let (a, ar) = audio.forward(mels)
            let normalize = L2Normalize()
            // VICReg's head is unnormalised; the cross-modal loss works on cosines either way.
            let (vn, vc) = config.objective == .vicreg ? normalize.forward(v) : (v, nil)
            let (an, ac) = config.objective == .vicreg ? normalize.forward(a) : (a, nil)
            let result = CrossModalInfoNCELoss(temperature: config.temperature, maskWindow: config.maskWindow)(
                video: vn, audio: an, origins: batch.audioOrigins.isEmpty ? nil : batch.audioOrigins)
            var gv = result.gradients[0], ga = result.gradients[1]
            for i in gv.storage.indices { gv.storage[i] *= config.audioWeight }
            for i in ga.storage.indices { ga.storage[i] *= config.audioWeight }
            if let vc { gv = normalize.backward(gv, cache: vc, inputGradient: true)! }
            if let ac { ga = normalize.backward(ga, cache: ac, inputGradient: true)! }
            video.backward(gv, record: vr)
            audio.backward(ga, record: ar)
            total += config.audioWeight * result.loss
            report.audioLoss = result.loss
        }
        report.loss = total
        let parameters = self.parameters
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
            if let keys { queue!.enqueue(keys, origins: batch.imageOrigins.isEmpty ? nil : batch.imageOrigins) }
        }
        step += 1
        return report
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
