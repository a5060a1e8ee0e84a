import DaemonRuntime
import Foundation
import Testing

func makeTempDirectory(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite("Ledger: torn lines, entries covered by checkpoints, rollback, compaction")
struct LedgerTests {
    static func ok(_ path: String, epochs: Int, step: Int? = nil) -> Ledger.Entry {
        Ledger.Entry(path: path, size: 10, mtime: 5, status: .ok, epochs: epochs, step: step)
    }

    @Test("garbled, torn and implausible lines are skipped; good ones load")
    func parse() {
        let text = """
            {"path":"/a","size":10,"mtime":5,"status":"ok","epochs":1,"step":3}
            {"path":"/b","size":10,"mtime
            not json at all
            {"path":"/c","size":10,"mtime":5,"status":"weird","epochs":1}
            {"path":"/d","size":10,"mtime":5,"status":"ok","epochs":-4}
            {"path":"","size":10,"mtime":5,"status":"ok","epochs":1}
            {"path":"/e","size":10,"mtime":5,"status":"bad","epochs":0,"reason":"x"}
            """
        let (entries, skipped) = Ledger.parse(Data(text.utf8))
        #expect(entries.map(\.path) == ["/a", "/e"])
        #expect(skipped == 5)
    }

    @Test("staged epochs are visible at once but reach the file only when committed with a step; a rollback ignores later steps")
    func pendingAndRollback() throws {
        let dir = try makeTempDirectory("ledger")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger(stateDirectory: dir)
        ledger.trust(upToStep: 0)
        ledger.stage(Self.ok("/a", epochs: 1))
        #expect(ledger.epochsDone("/a", size: 10, mtime: 5) == 1)
        #expect(!FileManager.default.fileExists(atPath: ledger.url.path))
        try ledger.commit(ledger.staged, step: 10)
        ledger.stage(Self.ok("/a", epochs: 2))
        try ledger.commit(ledger.staged, step: 20)
        #expect(ledger.staged.isEmpty)
        // Resumed from step 10: the epoch recorded for step 20 was lost with that checkpoint.
        let reopened = try Ledger(stateDirectory: dir)
        reopened.trust(upToStep: 10)
        #expect(reopened.epochsDone("/a", size: 10, mtime: 5) == 1)
        reopened.trust(upToStep: 20)
        #expect(reopened.epochsDone("/a", size: 10, mtime: 5) == 2)
        reopened.trust(upToStep: nil)
        #expect(reopened.epochsDone("/a", size: 10, mtime: 5) == 0)
        #expect(reopened.epochsDone("/a", size: 11, mtime: 5) == 0)
    }

    @Test("compaction keeps what retained checkpoints need and shrinks the file; the result reloads the same")
    func compaction() throws {
        let dir = try makeTempDirectory("ledger-compact")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger(stateDirectory: dir)
        ledger.trust(upToStep: .max)
        for epoch in 1...1500 {
            try ledger.commit([Self.ok("/a", epochs: epoch), Self.ok("/b", epochs: epoch)], step: epoch)
        }
        try ledger.record(Ledger.Entry(path: "/bad", size: 1, mtime: 1, status: .bad, epochs: 0, reason: "garbage"))
        #expect(ledger.lineCount == 3001)
        #expect(try ledger.compact(oldestRetainedStep: 1498))
        // Per path: the entry before step 1498 and those of 1498...1500; plus the bad file.
        #expect(ledger.lineCount == 9)
        let reloaded = try Ledger(stateDirectory: dir)
        reloaded.trust(upToStep: 1498)
        #expect(reloaded.epochsDone("/a", size: 10, mtime: 5) == 1498)
        reloaded.trust(upToStep: 1497)
        #expect(reloaded.epochsDone("/b", size: 10, mtime: 5) == 1497)
        #expect(reloaded.entry("/bad")?.status == .bad)
        #expect(try !reloaded.compact(oldestRetainedStep: 1498))
    }
}

@Suite("State directory: exclusive lock, clear errors")
struct StateDirectoryTests {
    @Test("a second holder is refused, naming the first one's pid; the lock is free again once released")
    func exclusive() throws {
        let dir = try makeTempDirectory("state")
        defer { try? FileManager.default.removeItem(at: dir) }
        var first: StateDirectory? = try StateDirectory(path: dir.path)
        #expect(first != nil)
        do {
            _ = try StateDirectory(path: dir.path)
            Issue.record("a second lock on one state dir succeeded")
        } catch {
            #expect(error.description.contains("in use") && error.description.contains("pid \(getpid())"), "\(error)")
        }
        first = nil
        _ = try StateDirectory(path: dir.path)
    }

    @Test("a state dir that is a file, or below a file, is a plain error; a missing one is created")
    func errors() throws {
        let dir = try makeTempDirectory("state-errors")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("file")
        try Data("x".utf8).write(to: file)
        #expect(throws: StateDirectory.Failure.self) { try StateDirectory(path: file.path) }
        do { _ = try StateDirectory(path: file.path) } catch { #expect(error.description.contains("not a directory"), "\(error)") }
        #expect(throws: StateDirectory.Failure.self) { try StateDirectory(path: file.path + "/below") }
        _ = try StateDirectory(path: dir.appendingPathComponent("a/b/c").path)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("a/b/c/lock").path))
    }
}

@Suite("Directory walker: symbolic links followed, loops end")
struct DirectoryWalkerTests {
    @Test("a symlinked root, symlinked subdirectories and files are followed; a loop and a dangling link end the walk")
    func links() throws {
        let dir = try makeTempDirectory("walk")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let real = dir.appendingPathComponent("real")
        try fm.createDirectory(at: real.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try Data("a".utf8).write(to: real.appendingPathComponent("a.mp4"))
        try Data("b".utf8).write(to: real.appendingPathComponent("sub/b.mp4"))
        try Data("h".utf8).write(to: real.appendingPathComponent(".hidden.mp4"))
        let other = dir.appendingPathComponent("other")
        try fm.createDirectory(at: other, withIntermediateDirectories: true)
        try Data("c".utf8).write(to: other.appendingPathComponent("c.mp4"))
        try fm.createSymbolicLink(atPath: real.appendingPathComponent("linked").path, withDestinationPath: other.path)
        try fm.createSymbolicLink(atPath: real.appendingPathComponent("sub/loop").path, withDestinationPath: real.path)
        try fm.createSymbolicLink(atPath: real.appendingPathComponent("dangling.mp4").path, withDestinationPath: "/nonexistent/x")
        let root = dir.appendingPathComponent("root-link")
        try fm.createSymbolicLink(atPath: root.path, withDestinationPath: real.path)

        #expect(DirectoryWalker.rootState(root.path) == .directory)
        let (files, problems) = DirectoryWalker.walk(root.path)
        let names = files.map { String($0.path.dropFirst(root.path.count + 1)) }
        #expect(names == ["a.mp4", "linked/c.mp4", "sub/b.mp4"], "\(names)")
        #expect(problems == [.brokenLink(path: root.appendingPathComponent("dangling.mp4").path)])
        #expect(DirectoryWalker.rootState(dir.appendingPathComponent("missing").path) == .missing)
        #expect(DirectoryWalker.rootState(real.appendingPathComponent("a.mp4").path) == .notDirectory)
    }
}
