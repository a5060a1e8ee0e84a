import DaemonRuntime
import Foundation
import FuzzSupport

/// The config loader on arbitrary text: `DaemonConfig.load(toml:origin:)`, then `validate()`
/// (with a fixed memory limit, so a verdict does not depend on the machine). Invariants: nothing
/// traps; the effective config that `toml()` prints (and every checkpoint stores, for `export`
/// and `embed` to read back) loads again as the same config, and that config validates too.
enum ConfigTarget {
    static let memoryLimit = 16 << 30

    static func run(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        let config: DaemonConfig
        do { config = try DaemonConfig.load(toml: text, origin: "fuzz input") } catch {
            Fuzz.note("load: \(error)")
            return
        }
        let printed = config.toml()  // `ssl-daemon run --print-config` prints it before validating
        do { try config.validate(memoryLimit: memoryLimit) } catch {
            Fuzz.note("validate: \(error)")
            return
        }
        Fuzz.note("valid")
        let reloaded: DaemonConfig
        do { reloaded = try DaemonConfig.load(toml: printed, origin: "toml() of a valid config") } catch {
            fatalError("fuzz invariant broken: toml() of a valid config does not load back: \(error)\n--- toml() ---\n\(printed)")
        }
        Fuzz.require(reloaded == config, "toml() of a valid config loads back as a different config\n--- toml() ---\n\(printed)")
        do { try reloaded.validate(memoryLimit: memoryLimit) } catch {
            fatalError("fuzz invariant broken: a valid config, printed and loaded back, no longer validates: \(error)")
        }
    }
}

#if FUZZING
/// libFuzzer's entry point (its own `main` drives it); `bytes` is valid only during the call.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    ConfigTarget.run(Fuzz.data(bytes, count))
    return 0
}
#else
/// Without libFuzzer: replays a corpus (`FuzzConfig Fuzz/corpus/config`).
@main
enum FuzzConfigMain {
    static func main() {
        let status = Fuzz.replay(target: "FuzzConfig", arguments: Array(CommandLine.arguments.dropFirst()), body: ConfigTarget.run)
        if status != 0 { exit(status) }
    }
}
#endif
