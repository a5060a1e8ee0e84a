import Foundation
import TemporalContrast

/// A real, valid checkpoint to mutate: what `Learner.state()` and `ReplayBuffer.save(into:)` write
/// for a learner with small heads (MoCo with a key queue of 32, SGD, the audio encoder) after one
/// training step (so the optimizer has momentum state), and a replay buffer of three examples,
/// one per pair kind, with 8×8 images and a 6×4 log-mel window.
///
/// The backbones have a fixed size (about 390 K parameters each, four copies with the key
/// encoder, the audio encoder and momentum: megabytes), far too large for a seed that libFuzzer
/// mutates byte by byte. So an input is read as changes to this fixture's checkpoint:
/// `complete(_:)` adds back every tensor of the fixture that the input lacks, unless the input
/// lists it in its metadata key `fuzz.omit` (comma-separated names; the key itself is removed).
/// The metadata is the input's own. The valid seed holds the metadata, the key queue, the replay
/// buffer and the tensors of at most `seedLimit` elements (heads and biases); the other seeds
/// hold the metadata and the one tensor they damage.
struct CheckpointFixture {
    static let seedLimit = 128
    /// The metadata key through which an input drops tensors that would be added back.
    static let omitKey = "fuzz.omit"
    static let byteLimit = 1 << 24

    let learner: Learner
    /// `learner.state()` as made, sharing the parameters' storage (so comparing with it is cheap).
    let learnerState: SafeTensors
    let buffer: ReplayBuffer
    /// The learner's state and the buffer: the checkpoint the seeds come from.
    let checkpoint: SafeTensors
    /// An example the harness inserts into a restored buffer, to check that it stays usable.
    let extraExample: TrainingExample

    static var learnerConfig: LearnerConfig {
        var c = LearnerConfig()
        c.queue = 32
        c.hidden = 16
        c.embedding = 8
        c.seed = 7
        return c
    }

    init() {
        learner = Learner(config: Self.learnerConfig)
        var rng = RandomSource(seed: 11)
        func noise(_ shape: [Int]) -> Tensor { Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in rng.uniform(-1, 1) }) }
        var batch = Learner.Batch()
        batch.anchors = noise([2, 16, 16, 3])
        batch.positives = noise([2, 16, 16, 3])
        batch.imageOrigins = [SampleOrigin(source: 1, time: 0.5), SampleOrigin(source: 2, time: 7.25)]
        batch.frames = noise([2, 16, 16, 3])
        batch.mels = noise([2, 16, 16, 1])
        batch.audioOrigins = batch.imageOrigins
        _ = learner.train(batch)
        learnerState = learner.state()

        func image(_ seed: UInt8) -> ImageView {
            ImageView(width: 8, height: 8, pixels: (0..<192).map { UInt8(truncatingIfNeeded: Int($0) &* Int(seed) &+ Int(seed)) })
        }
        var buffer = ReplayBuffer(byteLimit: Self.byteLimit)
        buffer.insert(TrainingExample(kind: .temporal, anchor: image(3), positive: image(5), audio: nil,
                                      origin: SampleOrigin(source: 1, time: 1.5), positiveTime: 1.75))
        buffer.insert(TrainingExample(kind: .tracked, anchor: image(7), positive: image(9), audio: nil,
                                      origin: SampleOrigin(source: 2, time: 4), positiveTime: 4.5))
        buffer.insert(TrainingExample(kind: .audioVideo, anchor: image(13), positive: nil,
                                      audio: MelView(frames: 6, bands: 4, values: (0..<24).map { Float($0) / 8 - 1 }),
                                      origin: SampleOrigin(source: 1, time: 2.125), positiveTime: 2.125))
        var used = buffer
        _ = used.sample(2, mix: PairMix(), rng: &rng)  // some examples with a use count
        self.buffer = used
        var checkpoint = learnerState
        used.save(into: &checkpoint)
        self.checkpoint = checkpoint
        extraExample = TrainingExample(kind: .temporal, anchor: image(17), positive: image(19), audio: nil,
                                       origin: SampleOrigin(source: 3, time: 9), positiveTime: 9.5)
    }

    /// Whether the valid seed carries the tensor.
    static func isInSeed(_ name: String, _ entry: SafeTensors.Entry) -> Bool {
        name.hasPrefix("replay.") || name.hasPrefix("queue.") || entry.shape.reduce(1, *) <= seedLimit
    }

    /// The checkpoint as the valid seed holds it: all the metadata and some tensors.
    var seed: SafeTensors {
        var out = SafeTensors()
        out.metadata = checkpoint.metadata
        for name in checkpoint.names where Self.isInSeed(name, checkpoint[name]!) { Self.copy(name, checkpoint[name]!, into: &out) }
        return out
    }

    /// `input` with the tensors of the fixture it lacks (see the type's documentation).
    func complete(_ input: SafeTensors) -> SafeTensors {
        var out = SafeTensors()
        out.metadata = input.metadata
        let omitted = Set((out.metadata.removeValue(forKey: Self.omitKey) ?? "").split(separator: ",").map(String.init))
        for name in input.names { Self.copy(name, input[name]!, into: &out) }
        for name in checkpoint.names where input[name] == nil && !omitted.contains(name) { Self.copy(name, checkpoint[name]!, into: &out) }
        return out
    }

    static func copy(_ name: String, _ e: SafeTensors.Entry, into file: inout SafeTensors) {
        switch e.dtype {
        case .f32: file.set(name, shape: e.shape, values: e.values)
        case .f64: file.set(name, shape: e.shape, doubles: e.doubles)
        case .u8: file.set(name, shape: e.shape, bytes: e.bytes)
        }
    }
}
