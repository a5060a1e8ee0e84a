import DaemonRuntime
import Foundation
import FuzzSupport

/// The ledger reader on arbitrary bytes: `Ledger.parse(_:)`, and `Ledger(stateDirectory:)` on a
/// state directory whose ledger.jsonl holds them. Invariants: nothing traps; every non-empty line
/// is an entry or counted as skipped, and every entry passes the documented checks; the loaded
/// ledger trusts per path the newest entry, and after `trust(upToStep:)` the newest bad entry or
/// "ok" entry of that step or earlier; what `record(_:)` writes, `parse` reads back as the same
/// entries; `compact(oldestRetainedStep:)` changes no answer for a resume from that step or later.
enum LedgerTarget {
    typealias Entry = Ledger.Entry

    static let stateDirectory = Fuzz.scratch.appendingPathComponent("state", isDirectory: true)
    static let rewrittenDirectory = Fuzz.scratch.appendingPathComponent("rewritten", isDirectory: true)

    static func run(_ data: Data) {
        let parsed = Ledger.parse(data)
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).count
        Fuzz.require(parsed.entries.count + parsed.skipped == lines, "\(lines) lines but \(parsed.entries.count) entries and \(parsed.skipped) skipped")
        for e in parsed.entries {
            Fuzz.require(!e.path.isEmpty && e.epochs >= 0 && e.mtime.isFinite && (e.step ?? 0) >= 0,
                         "parse kept an entry that fails its checks: \(e)")
        }

        Fuzz.note("\(parsed.entries.count) entries, \(parsed.skipped) lines skipped")
        let ledger = load(data, into: stateDirectory)
        Fuzz.require(ledger.lineCount == lines, "the loaded ledger counts \(ledger.lineCount) lines, the file has \(lines)")
        Fuzz.require(ledger.all == trusted(parsed.entries, upTo: Int.max), "a loaded ledger does not trust the newest entry of each path")
        for e in ledger.all {
            Fuzz.require(ledger.isSettled(e.path, size: e.size, mtime: e.mtime, epochs: e.epochs), "\(e.path): its own newest entry does not settle it")
            Fuzz.require(ledger.epochsDone(e.path, size: e.size, mtime: e.mtime) == (e.status == .ok ? e.epochs : 0), "\(e.path): epochsDone disagrees with its entry")
        }
        let steps: [Int] = parsed.entries.compactMap(\.step).sorted()
        let resumeStep: Int? = steps.isEmpty ? nil : steps[steps.count / 2]
        ledger.trust(upToStep: resumeStep)
        Fuzz.require(ledger.all == trusted(parsed.entries, upTo: resumeStep ?? -1), "trust(upToStep: \(String(describing: resumeStep))) trusts the wrong entries")

        // What record(_:) appends, parse reads back.
        if !parsed.entries.isEmpty {
            try? FileManager.default.removeItem(at: rewrittenDirectory.appendingPathComponent("ledger.jsonl"))
            let rewritten = load(nil, into: rewrittenDirectory)
            do { try rewritten.record(parsed.entries) } catch { fatalError("fuzz: record failed in \(rewrittenDirectory.path): \(error)") }
            let reread = Ledger.parse((try? Data(contentsOf: rewritten.url)) ?? Data())
            Fuzz.require(reread.skipped == 0 && reread.entries == parsed.entries, "record(_:) wrote entries that parse reads back differently")
        }

        // Compaction keeps what a resume from the oldest retained checkpoint or a later one trusts.
        if let oldest = resumeStep {
            let resumes: [Int] = [oldest, steps.last!, Int.max]
            let before = resumes.map { step in
                ledger.trust(upToStep: step)
                return ledger.all
            }
            let rewrote: Bool
            do { rewrote = try ledger.compact(oldestRetainedStep: oldest) } catch { fatalError("fuzz: compact failed in \(stateDirectory.path): \(error)") }
            Fuzz.note(rewrote ? "compacted" : "not compacted (too few lines)")
            guard rewrote else { return }
            let compacted = load(nil, into: stateDirectory)
            for (step, expected) in zip(resumes, before) {
                compacted.trust(upToStep: step)
                Fuzz.require(compacted.all == expected, "after compact(oldestRetainedStep: \(oldest)) a resume from step \(step) trusts \(compacted.all), before it trusted \(expected)")
            }
        }
    }

    /// Per path, the newest bad entry or "ok" entry of step `step` or earlier (an "ok" entry
    /// without a step counts as step 0), sorted by path: what `Ledger.all` documents.
    static func trusted(_ entries: [Entry], upTo step: Int) -> [Entry] {
        var newest: [String: Entry] = [:]
        for e in entries where e.status == .bad || (e.step ?? 0) <= step { newest[e.path] = e }
        return newest.values.sorted { $0.path < $1.path }
    }

    /// A ledger loaded from `directory`, after writing `data` as its ledger.jsonl (when given).
    static func load(_ data: Data?, into directory: URL) -> Ledger {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            if let data { try data.write(to: directory.appendingPathComponent("ledger.jsonl")) }
        } catch {
            fatalError("fuzz: cannot write a ledger into \(directory.path): \(error)")
        }
        do { return try Ledger(stateDirectory: directory) } catch {
            fatalError("fuzz invariant broken: Ledger(stateDirectory:) fails on a readable ledger.jsonl: \(error)")
        }
    }
}

#if FUZZING
/// libFuzzer's entry point (its own `main` drives it); `bytes` is valid only during the call.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLedger(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    LedgerTarget.run(Fuzz.data(bytes, count))
    return 0
}
#else
/// Without libFuzzer: replays a corpus (`FuzzLedger Fuzz/corpus/ledger`).
@main
enum FuzzLedgerMain {
    static func main() {
        let status = Fuzz.replay(target: "FuzzLedger", arguments: Array(CommandLine.arguments.dropFirst()), body: LedgerTarget.run)
        if status != 0 { exit(status) }
    }
}
#endif
