import Foundation
import FuzzSupport
import TemporalContrast

/// The safetensors reader on arbitrary bytes: `SafeTensors(data:)`, and `SafeTensors.metadata(of:)`
/// on the same bytes as a file. Invariants: neither traps; when the full reader accepts a file,
/// the header-only reader accepts it too with the same metadata; what the reader accepts,
/// `serialized()` writes back so that a second read gives the same tensors, bit for bit, and
/// metadata (the file order of the names may change: zero-byte tensors sort by offset then name).
enum SafeTensorsTarget {
    static let file = Fuzz.scratch.appendingPathComponent("input.safetensors")

    static func run(_ data: Data) {
        let parsed: SafeTensors?
        do { parsed = try SafeTensors(data: data) } catch {
            Fuzz.note("SafeTensors(data:): \(error)")
            parsed = nil
        }
        let metadata: [String: String]?
        do {
            try data.write(to: file)
            metadata = try? SafeTensors.metadata(of: file)
        } catch {
            fatalError("fuzz: cannot write \(file.path): \(error)")
        }
        guard let parsed else { return }
        Fuzz.note("read: \(parsed.names.count) tensors, \(parsed.metadata.count) metadata keys")
        Fuzz.require(metadata == parsed.metadata, "SafeTensors(data:) read metadata \(parsed.metadata) but SafeTensors.metadata(of:) gave \(String(describing: metadata))")
        Fuzz.require(Set(parsed.names) == Set(parsed.tensors.keys) && parsed.names.count == parsed.tensors.count, "names \(parsed.names) do not list the tensors once each")
        for name in parsed.names {
            let e = parsed[name]!
            let elements = e.shape.reduce(1, *)
            Fuzz.require(e.values.count + e.doubles.count + e.bytes.count == elements, "\(name): shape \(e.shape) but \(e.values.count + e.doubles.count + e.bytes.count) elements")
        }
        let again: SafeTensors
        do { again = try SafeTensors(data: parsed.serialized()) } catch {
            fatalError("fuzz invariant broken: the reader rejects what serialized() wrote for an accepted file: \(error)")
        }
        Fuzz.require(sameBits(parsed, again), "serialized() then SafeTensors(data:) changed the tensors or the metadata")
    }

    /// Equal names, dtypes, shapes, metadata and value bit patterns (NaN payloads included).
    static func sameBits(_ a: SafeTensors, _ b: SafeTensors) -> Bool {
        guard a.metadata == b.metadata, Set(a.names) == Set(b.names) else { return false }
        return a.names.allSatisfy { name in
            guard let x = a[name], let y = b[name] else { return false }
            return x.dtype == y.dtype && x.shape == y.shape && x.bytes == y.bytes
                && x.values.map(\.bitPattern) == y.values.map(\.bitPattern)
                && x.doubles.map(\.bitPattern) == y.doubles.map(\.bitPattern)
        }
    }
}

#if FUZZING
/// libFuzzer's entry point (its own `main` drives it); `bytes` is valid only during the call.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    SafeTensorsTarget.run(Fuzz.data(bytes, count))
    return 0
}
#else
/// Without libFuzzer: replays a corpus (`FuzzSafeTensors Fuzz/corpus/safetensors`).
@main
enum FuzzSafeTensorsMain {
    static func main() {
        let status = Fuzz.replay(target: "FuzzSafeTensors", arguments: Array(CommandLine.arguments.dropFirst()), body: SafeTensorsTarget.run)
        if status != 0 { exit(status) }
    }
}
#endif
