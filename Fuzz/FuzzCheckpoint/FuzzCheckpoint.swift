import Foundation
import FuzzSupport
import TemporalContrast

/// Checkpoint restore on mutated checkpoints: the input is read with `SafeTensors(data:)`,
/// completed with the fixture's large tensors (`CheckpointFixture.complete`), then given to
/// `Learner.restore(_:)` (one learner per process: building one is expensive) and to
/// `ReplayBuffer(restoring:byteLimit:)`. Invariants: nothing traps; a failed restore leaves the
/// learner exactly as it was; after a successful one the parameters are finite, the learner's
/// own `state()` restores again unchanged, and a restored buffer is within its bound, round-trips
/// through `save(into:)`, restores under a smaller bound too (evicting), and stays usable (an
/// insert and two draws, as the trainer does).
enum CheckpointTarget {
    /// Made on first use; libFuzzer calls the harness from one thread only.
    nonisolated(unsafe) static let fixture: CheckpointFixture = {
        let fixture = CheckpointFixture()
        selfCheck(fixture)
        return fixture
    }()

    static func run(_ data: Data) {
        let input: SafeTensors
        do { input = try SafeTensors(data: data) } catch {
            Fuzz.note("not read: \(error)")
            return
        }
        let file = fixture.complete(input)
        restoreLearner(file)
        restoreBuffer(file)
    }

    static func restoreLearner(_ file: SafeTensors) {
        let learner = fixture.learner
        do { try learner.restore(file) } catch {
            Fuzz.note("learner: \(error)")
            Fuzz.require(learner.state() == fixture.learnerState, "a failed Learner.restore changed the learner (error: \(error))")
            return
        }
        Fuzz.note("learner: restored, step \(learner.step)")
        Fuzz.require(learner.parametersAreFinite, "Learner.restore accepted non-finite parameters")
        let state = learner.state()
        do { try learner.restore(state) } catch {
            fatalError("fuzz invariant broken: a restored learner rejects its own state(): \(error)")
        }
        Fuzz.require(learner.state() == state, "restoring a learner's own state() changed it")
        // Back to the fixture, so every input meets the same learner.
        do { try learner.restore(fixture.learnerState) } catch {
            fatalError("fuzz invariant broken: the learner rejects the fixture's state: \(error)")
        }
        Fuzz.require(learner.state() == fixture.learnerState, "restoring the fixture's state did not bring the learner back")
    }

    static func restoreBuffer(_ file: SafeTensors) {
        let restored: ReplayBuffer?
        do { restored = try ReplayBuffer(restoring: file, byteLimit: CheckpointFixture.byteLimit) } catch {
            Fuzz.note("replay buffer: \(error)")
            return
        }
        guard let buffer = restored else {
            Fuzz.note("replay buffer: none in the checkpoint")
            return
        }
        Fuzz.note("replay buffer: restored, \(buffer.count) entries")
        Fuzz.require(buffer.byteCount <= buffer.byteLimit, "a restored buffer holds \(buffer.byteCount) bytes, over its bound \(buffer.byteLimit)")
        var saved = SafeTensors()
        buffer.save(into: &saved)
        let again: ReplayBuffer?
        do { again = try ReplayBuffer(restoring: saved, byteLimit: CheckpointFixture.byteLimit) } catch {
            fatalError("fuzz invariant broken: ReplayBuffer(restoring:) rejects what save(into:) wrote for a restored buffer: \(error)")
        }
        Fuzz.require(
            again.map { ($0.count, $0.byteCount, $0.inserted, $0.evicted) == (buffer.count, buffer.byteCount, buffer.inserted, buffer.evicted) } ?? false,
            "a restored buffer saved and restored again changed (\(buffer.count) entries before, \(again?.count ?? -1) after)")
        // A smaller bound than the one saved with (a changed config) evicts while restoring.
        let tighter = max(1, buffer.byteCount / 2)
        do {
            if let evicted = try ReplayBuffer(restoring: file, byteLimit: tighter) {
                Fuzz.require(evicted.byteCount <= tighter && evicted.count <= buffer.count, "a buffer restored under a bound of \(tighter) bytes holds \(evicted.byteCount) bytes in \(evicted.count) entries")
            }
        } catch {
            fatalError("fuzz invariant broken: ReplayBuffer(restoring:) accepts a checkpoint under one bound and rejects it under a smaller one: \(error)")
        }
        var used = buffer
        used.insert(fixture.extraExample)
        var rng = RandomSource(seed: 5)
        _ = used.sample(4, mix: PairMix(), rng: &rng, maxUses: 8)
        _ = used.sample(4, mix: PairMix(), rng: &rng)
    }

    /// The seed, completed, must restore: otherwise mutations never reach past the first check.
    static func selfCheck(_ fixture: CheckpointFixture) {
        let file = fixture.complete(fixture.seed)
        Fuzz.require(file.tensors == fixture.checkpoint.tensors && file.metadata == fixture.checkpoint.metadata, "the completed seed is not the fixture's checkpoint")
        do { try fixture.learner.restore(file) } catch { fatalError("fuzz: the fixture's own checkpoint does not restore: \(error)") }
        Fuzz.require(fixture.learner.state() == fixture.learnerState, "restoring the fixture's checkpoint changed the learner")
        let buffer = try? ReplayBuffer(restoring: file, byteLimit: CheckpointFixture.byteLimit)
        Fuzz.require(buffer?.count == fixture.buffer.count, "the fixture's replay buffer does not restore")
    }
}

/// Seed inputs: the valid seed (`CheckpointFixture.seed`), and variants that each hold the
/// metadata and one damage a restore must reject (the rest comes from the fixture).
enum CheckpointSeeds {
    static func write(to directory: URL) throws {
        let fixture = CheckpointTarget.fixture
        let checkpoint = fixture.checkpoint
        let smallParameter = checkpoint.names.first { $0.hasPrefix("video.") && CheckpointFixture.isInSeed($0, checkpoint[$0]!) }!
        let largeParameter = checkpoint.names.first { $0.hasPrefix("video.") && !CheckpointFixture.isInSeed($0, checkpoint[$0]!) }!
        let queue = CheckpointFixture.learnerConfig.queue

        func variant(_ change: (inout SafeTensors) -> Void) -> SafeTensors {
            var file = SafeTensors()
            file.metadata = checkpoint.metadata
            change(&file)
            return file
        }
        func replayEntries(_ change: (inout [String: Any]) -> Void) -> SafeTensors {
            variant { file in
                var json = (try? JSONSerialization.jsonObject(with: Data(file.metadata["replay.entries"]!.utf8))) as! [String: Any]
                change(&json)
                file.metadata["replay.entries"] = String(decoding: try! JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self)
            }
        }
        let files: [(String, SafeTensors)] = [
            ("valid", fixture.seed),
            ("nan-parameter", variant { f in
                var values = checkpoint[smallParameter]!.values
                values[0] = .nan
                f.set(smallParameter, shape: checkpoint[smallParameter]!.shape, values: values)
            }),
            ("wrong-shape-parameter", variant { f in f.set(largeParameter, shape: [2, 2], values: [1, 2, 3, 4]) }),
            ("omitted-parameter", variant { f in f.metadata[CheckpointFixture.omitKey] = largeParameter }),
            ("queue-times-f32", variant { f in f.set("queue.times", shape: [queue], values: [Float](repeating: 1, count: queue)) }),
            ("queue-sources-fraction", variant { f in f.set("queue.sources", shape: [queue], values: [Float](repeating: 0.5, count: queue)) }),
            ("write-index-out-of-range", variant { f in f.metadata["queue.write_index"] = String(queue) }),
            ("step-negative", variant { f in f.metadata["step"] = "-1" }),
            ("foreign-optimizer-state", variant { f in f.set("optimizer.adam_m.\(smallParameter.dropFirst("video.".count))", shape: [1], values: [0]) }),
            ("replay-image-too-large", replayEntries { json in
                var entries = json["entries"] as! [[String: Any]]
                entries[0]["anchor"] = [8192, 8192]
                json["entries"] = entries
            }),
            ("replay-repeated-id", replayEntries { json in
                var entries = json["entries"] as! [[String: Any]]
                entries[1]["id"] = entries[0]["id"]
                json["entries"] = entries
            }),
            ("replay-audio-dtype", variant { f in f.set("replay.audio", shape: [24], doubles: [Double](repeating: 0, count: 24)) }),
        ]
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, file) in files {
            try file.serialized().write(to: directory.appendingPathComponent("\(name).safetensors"))
        }
        print("FuzzCheckpoint: wrote \(files.count) seeds to \(directory.path)")
    }
}

#if FUZZING
/// libFuzzer's entry point (its own `main` drives it); `bytes` is valid only during the call.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    CheckpointTarget.run(Fuzz.data(bytes, count))
    return 0
}
#else
/// Without libFuzzer: replays a corpus (`FuzzCheckpoint Fuzz/corpus/checkpoint`), or with
/// `--write-seeds DIR` writes the seed corpus.
@main
enum FuzzCheckpointMain {
    static func main() throws {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--write-seeds", arguments.count == 2 {
            try CheckpointSeeds.write(to: URL(fileURLWithPath: arguments.removeLast(), isDirectory: true))
            return
        }
        let status = Fuzz.replay(target: "FuzzCheckpoint", arguments: arguments, body: CheckpointTarget.run)
        if status != 0 { exit(status) }
    }
}
#endif
