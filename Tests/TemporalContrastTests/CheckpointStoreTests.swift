import Dispatch
import Foundation
import Synchronization
import Testing
import TemporalContrast

/// What a thread watching a checkpoint directory saw, and the flag that stops it.
final class Observer: Sendable {
    let stop = Atomic<Bool>(false)
    let state = Mutex<(seen: Set<String>, bad: [String])>(([], []))
}

@Suite("Checkpoint store: atomic writes, retention, fallback past damaged files")
struct CheckpointStoreTests {
    /// A fresh directory under the system temp dir; the caller removes it.
    static func makeTempDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func checkpoint(step: Int, count: Int = 256) -> SafeTensors {
        var file = SafeTensors()
        file.set("weight", shape: [count], values: (0..<count).map { Float($0) * 0.5 + Float(step) })
        file.set("bias", shape: [2, 2], values: [1, -2, 3.25, Float(step)])
        file.metadata = ["format_version": "1", "step": "\(step)", "architecture": "small"]
        return file
    }

    static func names(in directory: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
    }

    static func isCheckpointName(_ name: String) -> Bool {
        name.wholeMatch(of: /ckpt-[0-9]{12}\.safetensors/) != nil
    }

    @Test("a write lands under its zero-padded name, reads back equal, leaves no temporary file, and no partial file ever carries a checkpoint name")
    func writeAndReadBack() throws {
        let root = try Self.makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        // Not yet existing, two levels deep: write creates it.
        let directory = root.appendingPathComponent("state/checkpoints")
        let store = CheckpointStore(directory: directory, keep: 100)

        // A concurrent observer lists the directory throughout the writes: every *.safetensors it
        // sees must be a complete, valid checkpoint, since only the final rename gives that name.
        let observer = Observer()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            while !observer.stop.load(ordering: .acquiring) {
                for name in Self.names(in: directory) {
                    var problem: String?
                    if name.hasSuffix(".safetensors") {
                        if !Self.isCheckpointName(name) {
                            problem = "unexpected name"
                        } else {
                            do { _ = try CheckpointStore.load(directory.appendingPathComponent(name)) } catch { problem = "\(error)" }
                        }
                    } else if !(name.hasPrefix(".ckpt-") && name.hasSuffix(".tmp")) {
                        problem = "neither a checkpoint nor a temporary file"
                    }
                    observer.state.withLock { state in
                        state.seen.insert(name)
                        if let problem { state.bad.append("\(name): \(problem)") }
                    }
                }
            }
        }
        var written: [URL] = []
        for step in [7, 8, 9] {
            // 1M floats (4 MB) so the temporary file is around long enough to be observed.
            written.append(try store.write(Self.checkpoint(step: step, count: 1 << 20), step: step))
        }
        observer.stop.store(true, ordering: .releasing)
        group.wait()

        let (seen, bad) = observer.state.withLock { ($0.seen, $0.bad) }
        #expect(bad.isEmpty, "observer saw: \(bad)")
        #expect(seen.allSatisfy { Self.isCheckpointName($0) || ($0.hasPrefix(".ckpt-") && $0.hasSuffix(".tmp")) })

        let url = try store.write(Self.checkpoint(step: 42), step: 42)
        #expect(url.lastPathComponent == "ckpt-000000000042.safetensors")
        #expect(url.deletingLastPathComponent().standardizedFileURL.path == directory.standardizedFileURL.path)
        #expect(FileManager.default.fileExists(atPath: url.path))
        #expect(written.map(\.lastPathComponent) == (7...9).map { "ckpt-00000000000\($0).safetensors" })

        let loaded = try CheckpointStore.load(url)
        #expect(loaded == Self.checkpoint(step: 42))
        #expect(loaded.metadata == ["format_version": "1", "step": "42", "architecture": "small"])
        #expect(try SafeTensors(contentsOf: url) == Self.checkpoint(step: 42))

        let names = Self.names(in: directory)
        #expect(!names.contains { $0.hasSuffix(".tmp") })
        #expect(names.allSatisfy(Self.isCheckpointName))
        #expect(store.checkpoints().map(\.step) == [7, 8, 9, 42])
    }

    @Test("keep 3 over steps 1...6 leaves exactly 4, 5, 6; the checkpoint just written is never pruned")
    func retention() throws {
        let directory = try Self.makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = CheckpointStore(directory: directory, keep: 3)
        for step in 1...6 {
            try store.write(Self.checkpoint(step: step), step: step)
            #expect(store.checkpoints().count == min(step, 3))
        }
        #expect(store.checkpoints().map(\.step) == [4, 5, 6])
        #expect(Self.names(in: directory) == (4...6).map { "ckpt-00000000000\($0).safetensors" })

        // Resuming from an older step: the oldest of the others goes, not the file just written.
        try store.write(Self.checkpoint(step: 2), step: 2)
        #expect(store.checkpoints().map(\.step) == [2, 5, 6])
    }

    @Test("a damaged newest checkpoint and one whose metadata step disagrees with its name are reported and skipped")
    func fallbackPastDamage() throws {
        let directory = try Self.makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = CheckpointStore(directory: directory, keep: 10)
        for step in 1...3 { try store.write(Self.checkpoint(step: step), step: step) }

        // Truncated to half, as a crash of a non-atomic writer would leave it.
        let third = store.url(forStep: 3)
        let bytes = try Data(contentsOf: third)
        try bytes.prefix(bytes.count / 2).write(to: third)

        var reports: [String] = []
        let found = try #require(store.newestValid { reports.append($0) })
        #expect(found.url.lastPathComponent == "ckpt-000000000002.safetensors")
        #expect(found.file == Self.checkpoint(step: 2))
        #expect(reports.count == 1)
        #expect(reports.first?.contains("ckpt-000000000003.safetensors") == true)
        #expect(throws: CheckpointError.self) { try CheckpointStore.load(third) }

        // A complete file under step 4's name that says it is step 7.
        let fourth = store.url(forStep: 4)
        try Self.checkpoint(step: 7).serialized().write(to: fourth)
        reports = []
        #expect(store.newestValid { reports.append($0) }?.url.lastPathComponent == "ckpt-000000000002.safetensors")
        #expect(reports.count == 2)
        #expect(reports.first?.contains("ckpt-000000000004.safetensors") == true)
        #expect(reports.first?.contains("step 7") == true)
        do {
            _ = try CheckpointStore.load(fourth)
            Issue.record("loaded a checkpoint whose step disagrees with its name")
        } catch {
            guard case .invalid(let path, let reason) = error else { Issue.record("expected .invalid, got \(error)"); return }
            #expect(path == fourth.path)
            #expect(reason.contains("differs"))
        }

        // Without format_version: rejected on read, and refused on write.
        var unversioned = Self.checkpoint(step: 5)
        unversioned.metadata["format_version"] = nil
        try unversioned.serialized().write(to: store.url(forStep: 5))
        reports = []
        #expect(store.newestValid { reports.append($0) }?.url.lastPathComponent == "ckpt-000000000002.safetensors")
        #expect(reports.first?.contains("format_version") == true)
        try FileManager.default.removeItem(at: store.url(forStep: 5))
        #expect(throws: CheckpointError.self) { try store.write(unversioned, step: 5) }
        #expect(throws: CheckpointError.self) { try store.write(Self.checkpoint(step: 6), step: 5) }
        #expect(!FileManager.default.fileExists(atPath: store.url(forStep: 5).path))

        // Nothing valid at all.
        let empty = CheckpointStore(directory: directory.appendingPathComponent("none"), keep: 1)
        #expect(empty.newestValid() == nil)
        #expect(empty.checkpoints().isEmpty)
    }

    @Test("a crashed writer's temporary file is invisible to readers and removed by the next write; a live writer's is kept")
    func staleTemporaryFiles() throws {
        let directory = try Self.makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = CheckpointStore(directory: directory, keep: 3)
        try store.write(Self.checkpoint(step: 1), step: 1)

        // pid 2147483647 exceeds any pid_max, so its writer is certainly gone; pid 1 is always alive.
        let crashed = directory.appendingPathComponent(".ckpt-9-2147483647-x.tmp")
        let live = directory.appendingPathComponent(".ckpt-9-1-y.tmp")
        for url in [crashed, live] { try Data("garbage, not safetensors".utf8).write(to: url) }
        // Other clutter that must be ignored too.
        try Data("x".utf8).write(to: directory.appendingPathComponent("ckpt-abc.safetensors"))
        try Data("x".utf8).write(to: directory.appendingPathComponent("notes.txt"))

        #expect(store.checkpoints().map(\.step) == [1])
        var reports: [String] = []
        #expect(store.newestValid { reports.append($0) }?.url.lastPathComponent == "ckpt-000000000001.safetensors")
        #expect(reports.isEmpty)

        try store.write(Self.checkpoint(step: 2), step: 2)
        #expect(!FileManager.default.fileExists(atPath: crashed.path))
        #expect(FileManager.default.fileExists(atPath: live.path))
        #expect(store.checkpoints().map(\.step) == [1, 2])
    }

    @Test("a directory that cannot be created makes write throw an error naming the path")
    func unwritableDirectory() throws {
        let root = try Self.makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        // A regular file where a directory should be: fails for root too, unlike permissions.
        let blocker = root.appendingPathComponent("blocker")
        try Data("file".utf8).write(to: blocker)
        let store = CheckpointStore(directory: blocker.appendingPathComponent("sub/checkpoints"), keep: 2)
        do {
            try store.write(Self.checkpoint(step: 1), step: 1)
            Issue.record("write under a regular file succeeded")
        } catch {
            guard case .io(let path, let operation, let message) = error else { Issue.record("expected .io, got \(error)"); return }
            #expect(path.contains(blocker.path))
            #expect(operation == "mkdir")
            #expect(!message.isEmpty)
            #expect(error.description.contains(blocker.path))
        }
        #expect(store.checkpoints().isEmpty)
        #expect(store.newestValid() == nil)
    }

    @Test("resolve finds the newest valid checkpoint from a state directory, a checkpoint directory, or a file")
    func resolve() throws {
        let state = try Self.makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: state) }
        #expect(CheckpointStore.resolve(state) == nil)
        #expect(CheckpointStore.resolve(state.appendingPathComponent("missing")) == nil)

        let store = CheckpointStore(directory: state.appendingPathComponent("checkpoints"), keep: 5)
        for step in [10, 20, 30] { try store.write(Self.checkpoint(step: step), step: step) }
        // Damage the newest: resolve must pass over it, and say why.
        try Data("broken".utf8).write(to: store.url(forStep: 30))

        var reports: [String] = []
        let fromState = try #require(CheckpointStore.resolve(state) { reports.append($0) })
        #expect(fromState.lastPathComponent == "ckpt-000000000020.safetensors")
        #expect(fromState.standardizedFileURL.path == store.url(forStep: 20).standardizedFileURL.path)
        #expect(reports.count == 1 && reports[0].contains("ckpt-000000000030.safetensors"))

        #expect(CheckpointStore.resolve(store.directory)?.lastPathComponent == "ckpt-000000000020.safetensors")
        // A file is taken as named, even a damaged one, so load can report what is wrong with it.
        #expect(CheckpointStore.resolve(store.url(forStep: 30)) == store.url(forStep: 30))
        #expect(CheckpointStore.resolve(store.url(forStep: 10)) == store.url(forStep: 10))
    }
}
