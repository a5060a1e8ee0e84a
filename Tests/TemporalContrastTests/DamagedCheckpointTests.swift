import Foundation
import Testing
import TemporalContrast

/// Checkpoints as a damaged disk or a hostile user would leave them: every case is an error that
/// names the cause, never a trap, and a failed restore leaves the learner as it was.
@Suite("Damaged checkpoints: overflow, wrong sizes and dtypes, non-finite values", .serialized)
struct DamagedCheckpointTests {
    /// A safetensors file made of `header` (JSON text) and `dataBytes` zero bytes.
    static func file(header: String, dataBytes: Int = 16, claimedLength: UInt64? = nil) -> Data {
        var json = Data(header.utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: (claimedLength ?? UInt64(json.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(Data(count: dataBytes))
        return out
    }

    @Test("headers whose shape product or offsets overflow, or that claim more than the file, are format errors", arguments: [
        #"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}"#,
        #"{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,16]}}"#,
        #"{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}"#,
        #"{"w":{"dtype":"U8","shape":[2],"data_offsets":[1,-9223372036854775808]}}"#,
        #"{"w":{"dtype":"U8","shape":[2],"data_offsets":[9223372036854775807,1]}}"#,
        #"{"w":{"dtype":"U8","shape":[2],"data_offsets":[9223372036854775806,9223372036854775807]}}"#,
        #"{"w":{"dtype":"U8","shape":[-2,-8],"data_offsets":[0,16]}}"#,
        #"{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}"#,
        #"{"w":{"dtype":"U8","shape":[1e300],"data_offsets":[0,1]}}"#,
        #"{"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}"#,
        #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,17]}}"#,
        #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,4]}}"#,
        #"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#,
        #"{"w":{"dtype":"F32","shape":"x","data_offsets":[0,4]}}"#,
        #"{"__metadata__":{"step":1}}"#,
        #"[1,2,3]"#,
    ])
    func overflowingHeaders(header: String) {
        #expect(throws: SafeTensors.FormatError.self) { try SafeTensors(data: Self.file(header: header)) }
    }

    @Test("a header length past the file or past the reader's bound is an error, and so is a file under 8 bytes")
    func headerLengths() {
        #expect(throws: SafeTensors.FormatError.self) { try SafeTensors(data: Self.file(header: "{}", claimedLength: 1 << 62)) }
        #expect(throws: SafeTensors.FormatError.self) { try SafeTensors(data: Self.file(header: "{}", claimedLength: UInt64.max)) }
        #expect(throws: SafeTensors.FormatError.self) { try SafeTensors(data: Data([1, 2, 3])) }
    }

    static func smallConfig(_ optimizer: LearnerConfig.OptimizerKind = .sgd) -> LearnerConfig {
        var c = LearnerConfig()
        c.hidden = 16
        c.embedding = 8
        c.queue = 32
        c.optimizer = optimizer
        return c
    }

    /// A learner trained a couple of steps (so optimizer state exists) and its checkpoint.
    static func trainedState(_ optimizer: LearnerConfig.OptimizerKind = .sgd) -> SafeTensors {
        let learner = Learner(config: smallConfig(optimizer))
        var rng = RandomSource(seed: 3)
        for _ in 0..<2 {
            var batch = Learner.Batch()
            batch.anchors = Tensor(shape: [4, 32, 32, 3], storage: (0..<(4 * 32 * 32 * 3)).map { _ in rng.uniform(-1, 1) })
            batch.positives = Tensor(shape: [4, 32, 32, 3], storage: (0..<(4 * 32 * 32 * 3)).map { _ in rng.uniform(-1, 1) })
            batch.imageOrigins = (0..<4).map { SampleOrigin(source: $0, time: Double($0)) }
            _ = learner.train(batch)
        }
        return learner.state()
    }

    @Test("restore rejects wrong lengths, dtypes, shapes, non-finite values, foreign optimizer state and bad counters, and changes nothing when it does")
    func restoreValidates() throws {
        let good = Self.trainedState()
        let firstParameter = try #require(good.names.first { $0.hasPrefix("video.") })
        let momentum = try #require(good.names.first { $0.hasPrefix("optimizer.momentum.") })
        var cases: [(String, SafeTensors)] = []
        func variant(_ what: String, _ change: (inout SafeTensors) -> Void) {
            var f = good
            change(&f)
            cases.append((what, f))
        }
        variant("optimizer state too short") { $0.set(momentum, shape: [3], values: [1, 2, 3]) }
        variant("optimizer state of another optimizer") { $0.set("optimizer.adam_m.backbone.conv1.weight", shape: [1], values: [0]) }
        variant("parameter stored as F64") { f in
            let e = f[firstParameter]!
            f.set(firstParameter, shape: e.shape, doubles: e.values.map(Double.init))
        }
        variant("NaN parameter") { f in
            var e = f[firstParameter]!
            e.values[0] = .nan
            f.set(firstParameter, shape: e.shape, values: e.values)
        }
        variant("infinite parameter") { f in
            var e = f[firstParameter]!
            e.values[1] = .infinity
            f.set(firstParameter, shape: e.shape, values: e.values)
        }
        variant("wrong shape") { f in
            let e = f[firstParameter]!
            f.set(firstParameter, shape: [e.values.count], values: e.values)
        }
        variant("missing parameter") { f in
            var copy = SafeTensors()
            for name in f.names where name != firstParameter {
                let e = f[name]!
                switch e.dtype {
                case .f32: copy.set(name, shape: e.shape, values: e.values)
                case .f64: copy.set(name, shape: e.shape, doubles: e.doubles)
                case .u8: copy.set(name, shape: e.shape, bytes: e.bytes)
                }
            }
            copy.metadata = f.metadata
            f = copy
        }
        variant("queue.sources shorter than the queue") { $0.set("queue.sources", shape: [3], values: [1, 2, 3]) }
        variant("queue.sources not ids") { f in f.set("queue.sources", shape: [32], values: [Float](repeating: 1e30, count: 32)) }
        variant("queue.times NaN") { f in f.set("queue.times", shape: [32], doubles: [Double](repeating: .nan, count: 32)) }
        variant("queue write index out of range") { $0.metadata["queue.write_index"] = "32" }
        variant("queue count negative") { $0.metadata["queue.count"] = "-1" }
        variant("format_version 99") { $0.metadata["format_version"] = "99" }
        variant("step not a number") { $0.metadata["step"] = "1e400" }
        variant("skipped updates beyond the step") { $0.metadata["skipped_updates"] = "1000" }
        variant("optimizer steps huge") { $0.metadata["optimizer.steps"] = "99999999999999999999" }

        let learner = Learner(config: Self.smallConfig())
        let before = learner.state()
        for (what, file) in cases {
            #expect(throws: Learner.RestoreError.self, "\(what)") { try learner.restore(file) }
            // Also through the file format: what was written is what is refused.
            #expect(throws: Learner.RestoreError.self, "\(what) (serialized)") { try learner.restore(SafeTensors(data: file.serialized())) }
            #expect(learner.state() == before, "a failed restore (\(what)) changed the learner")
        }
        try learner.restore(good)
        #expect(learner.state() == good)
    }

    @Test("AdamW state restores only with both moments of the right length")
    func adamState() throws {
        let good = Self.trainedState(.adamw)
        let learner = Learner(config: Self.smallConfig(.adamw))
        try learner.restore(good)
        #expect(learner.state() == good)
        var bad = good
        let key = try #require(good.names.first { $0.hasPrefix("optimizer.adam_v.") })
        bad.set(key, shape: [1], values: [0])
        #expect(throws: Learner.RestoreError.self) { try learner.restore(bad) }
        bad = good
        bad.set("optimizer.momentum.x", shape: [1], values: [0])
        #expect(throws: Learner.RestoreError.self) { try learner.restore(bad) }
    }

    @Test("the store refuses a checkpoint with non-finite values, and falls back past it")
    func nonFiniteIsInvalid() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nonfinite-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CheckpointStore(directory: dir, keep: 5)
        var good = SafeTensors()
        good.set("w", shape: [2], values: [1, 2])
        good.metadata = ["format_version": "2", "step": "1"]
        try store.write(good, step: 1)
        var bad = good
        bad.set("w", shape: [2], values: [.nan, 2])
        bad.metadata["step"] = "2"
        // The store writes what it is given; readers refuse it.
        try store.write(bad, step: 2)
        #expect(throws: CheckpointError.self) { try CheckpointStore.load(store.url(forStep: 2)) }
        var reasons: [String] = []
        let found = try #require(store.newestValid { reasons.append($0) })
        #expect(found.url == store.url(forStep: 1))
        #expect(reasons.count == 1 && reasons[0].contains("NaN"))
    }

    @Test("replay entries with overflowing sizes, wrong dtypes or inconsistent views are errors")
    func replayValidates() throws {
        var buffer = ReplayBuffer(byteLimit: 1 << 20)
        let view = ImageView(width: 4, height: 4, pixels: [UInt8](repeating: 7, count: 48))
        buffer.insert(TrainingExample(kind: .temporal, anchor: view, positive: view, audio: nil, origin: SampleOrigin(source: 1, time: 0), positiveTime: 0.2))
        buffer.insert(TrainingExample(kind: .audioVideo, anchor: view, positive: nil, audio: MelView(frames: 3, bands: 2, values: [1, 2, 3, 4, 5, 6]), origin: SampleOrigin(source: 1, time: 1), positiveTime: 1))
        var file = SafeTensors()
        buffer.save(into: &file)
        #expect(try ReplayBuffer(restoring: file, byteLimit: 1 << 20)?.count == 2)
        let json = try #require(file.metadata["replay.entries"])
        var cases: [SafeTensors] = []
        for (old, new) in [("\"anchor\":[4,4]", "\"anchor\":[4294967296,4294967296]"), ("\"anchor\":[4,4]", "\"anchor\":[-4,-4]"),
                           ("\"audio\":[3,2]", "\"audio\":[4294967296,4294967296]"), ("\"uses\":0", "\"uses\":-5")] {
            var f = file
            f.metadata["replay.entries"] = json.replacingOccurrences(of: old, with: new)
            #expect(f.metadata["replay.entries"] != json, "pattern \(old) not found")
            cases.append(f)
        }
        var f = file
        f.set("replay.pixels", shape: [24], values: [Float](repeating: 0, count: 24))
        cases.append(f)
        f = file
        f.set("replay.audio", shape: [6], values: [1, 2, .nan, 4, 5, 6])
        cases.append(f)
        for c in cases {
            #expect(throws: ReplayBuffer.RestoreError.self) { try ReplayBuffer(restoring: c, byteLimit: 1 << 20) }
        }
    }

    @Test("streamed checkpoints are byte for byte what serialized() gives, across chunk boundaries")
    func streamingWrite() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var file = SafeTensors()
        file.set("a", shape: [3 << 18], values: (0..<(3 << 18)).map { Float($0) })
        file.set("b", shape: [5], doubles: [1, 2, 3, 4, 5])
        file.set("c", shape: [(1 << 20) + 3], bytes: (0..<((1 << 20) + 3)).map { UInt8($0 % 251) })
        file.metadata = ["format_version": "2", "step": "7"]
        let url = try CheckpointStore(directory: dir, keep: 1).write(file, step: 7)
        #expect(try Data(contentsOf: url) == file.serialized())
        #expect(try SafeTensors.metadata(of: url) == file.metadata)
    }

    @Test("pruning spares the newest checkpoint the store is told to retain")
    func retention() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("retain-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CheckpointStore(directory: dir, keep: 2) { $0["full"] == "1" }
        for step in 1...6 {
            var f = SafeTensors()
            f.set("w", shape: [1], values: [Float(step)])
            f.metadata = ["format_version": "2", "step": "\(step)", "full": step == 1 || step == 3 ? "1" : "0"]
            try store.write(f, step: step)
        }
        #expect(store.checkpoints().map(\.step) == [3, 5, 6])
    }
}
