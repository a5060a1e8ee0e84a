import Foundation
import Synchronization

/// What every fuzz target shares: the input as `Data`, a scratch directory, invariant checks that
/// stop the process with a message, and the corpus replay that a build without libFuzzer runs.
package enum Fuzz {
    /// A copy of the bytes libFuzzer passes to `LLVMFuzzerTestOneInput` (they are valid only
    /// during that call, so the pointer must not escape it).
    package static func data(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Data {
        guard let bytes, count > 0 else { return Data() }
        return Data(bytes: bytes, count: count)
    }

    /// Stops the process when an invariant of the code under test does not hold for this input.
    /// `fatalError` keeps its message in release builds (a `precondition`'s is dropped), so the
    /// crash report names what broke; libFuzzer records the input as a crash.
    package static func require(
        _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
        file: StaticString = #fileID, line: UInt = #line
    ) {
        if !condition() { fatalError("fuzz invariant broken: \(message())", file: file, line: line) }
    }

    /// Set `FUZZ_VERBOSE=1` to have the harnesses say what they did with each input (which
    /// check rejected it, or how far it got): for seeing what a corpus file exercises.
    package static let verbose = ProcessInfo.processInfo.environment["FUZZ_VERBOSE"].map { !$0.isEmpty && $0 != "0" } ?? false

    /// Writes `message` to standard error when `verbose` is set.
    package static func note(_ message: @autoclosure () -> String) {
        if verbose { FileHandle.standardError.write(Data("  \(message())\n".utf8)) }
    }

    /// A directory of this process's own under `$TMPDIR` (or /tmp), made on first use and
    /// removed when the process exits normally. Targets that need files on disk write them here.
    package static let scratch: URL = {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/ssl-daemon-fuzz.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("fuzz: cannot create a scratch directory under \(base): \(String(cString: strerror(errno)))") }
        let path = String(cString: made)
        scratchPath.withLock { $0 = path }
        atexit { if let path = scratchPath.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) } }
        return URL(fileURLWithPath: path, isDirectory: true)
    }()

    /// The scratch directory's path, for the exit handler (which cannot capture context).
    private static let scratchPath = Mutex<String?>(nil)

    /// Replays every file named in `arguments` (a directory stands for the regular files in it,
    /// in name order) through `body`: the regression run of a build without libFuzzer. An input
    /// that breaks an invariant stops the process, so the last "replaying" line names it.
    /// Returns the process exit status: 0, or 2 for a usage error or an unreadable path.
    package static func replay(target: String, arguments: [String], body: (Data) -> Void) -> Int32 {
        guard !arguments.isEmpty, !arguments.contains(where: { $0.hasPrefix("-") }) else {
            FileHandle.standardError.write(Data("""
                usage: \(target) CORPUS_DIR_OR_FILE...
                  replays each input through the harness (build with scripts/fuzz.sh for libFuzzer)

                """.utf8))
            return 2
        }
        var files: [URL] = []
        for argument in arguments {
            let url = URL(fileURLWithPath: argument)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("\(target): \(argument): no such file or directory\n".utf8))
                return 2
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
                files += names.sorted().map { url.appendingPathComponent($0) }.filter { !$0.hasDirectoryPath && isRegularFile($0) }
            } else {
                files.append(url)
            }
        }
        for file in files {
            FileHandle.standardError.write(Data("\(target): replaying \(file.path)\n".utf8))
            guard let data = try? Data(contentsOf: file) else {
                FileHandle.standardError.write(Data("\(target): cannot read \(file.path)\n".utf8))
                return 2
            }
            body(data)
        }
        print("\(target): \(files.count) inputs replayed, no invariant broken")
        return 0
    }

    private static func isRegularFile(_ url: URL) -> Bool {
        var info = stat()
        return stat(url.path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
    }
}
