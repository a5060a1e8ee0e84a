import Foundation
import Testing
import TestSupport

/// The benchmark commands users run to see where the time goes and which kernels run.
@Suite("ssl-daemon bench gemm and bench train --profile (binary)", .timeLimit(.minutes(10)))
struct BenchCommandTests {
    static func lastJSON(_ result: ProcessResult) throws -> [String: Any] {
        guard let line = result.stdout.split(separator: "\n").last else { throw TestFailure("no output; stderr: \(result.stderr)") }
        return try jsonObject(line)
    }

    static func cpuFlags() -> Set<String> {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " ").map(String.init))
    }

    @Test("bench gemm runs the kernel OPENBLAS_CORETYPE names when set, and never a pre-AVX2 fallback on an AVX2 CPU when unset")
    func kernelInUse() throws {
        let result = try run(try daemonBinary(), ["bench", "gemm", "--shape", "96,80,64", "--op", "NT", "--repeats", "2", "--threads", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try Self.lastJSON(result)
        let core = try #require(json["blas_core"] as? String)
        #expect((json["gflops"] as? Double ?? 0) > 0)
        #expect(json["m"] as? Int == 96 && json["n"] as? Int == 80 && json["k"] as? Int == 64)
        if let requested = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !requested.isEmpty {
            // Respected as set (OpenBLAS's names are case-insensitive).
            #expect(core.lowercased() == requested.lowercased(), "OPENBLAS_CORETYPE=\(requested) but \(core) ran")
            #expect(!result.stderr.contains("chosen by ssl-daemon"))
        } else if Self.cpuFlags().isSuperset(of: ["avx2", "fma"]) {
            let fallbacks = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge"]
            #expect(!fallbacks.contains(core.lowercased()), "OpenBLAS ran \(core) on a CPU with AVX2")
        }
    }

    @Test("bench gemm rejects a malformed shape or transpose with exit 64 and the option's name")
    func badOptions() throws {
        for args in [["--shape", "10,20"], ["--shape", "0,5,5"], ["--op", "XY"]] {
            let result = try run(try daemonBinary(), ["bench", "gemm"] + args)
            #expect(result.status == 64)
            #expect(result.stderr.contains(args[0]), "\(result.stderr)")
        }
    }

    @Test("bench train --profile lists the reference encoder's convolutions (on each engine) and splits the step into them and the rest",
          arguments: [("onednn", "conv forward (", "conv backward ("), ("blas", "sgemm NT", "sgemm TN")])
    func trainProfile(engine: String, forward: String, weights: String) throws {
        let result = try run(try daemonBinary(), ["bench", "train", "--steps", "1", "--warmup", "1", "--threads", "1", "--profile", "--convolution", engine])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try Self.lastJSON(result)
        let msPerStep = try #require(json["ms_per_step"] as? Double)
        let lines = result.stderr.split(separator: "\n")
        // conv1 forward (64·32·32 positions, 32 outputs, 3·3·3 inputs) and conv4's weight gradient
        // (the BLAS path lists it as the product it is: 256 × 1152 × 1024).
        #expect(lines.contains { $0.contains(forward) && $0.contains("65536 × 32 × 27") })
        #expect(lines.contains { $0.contains(weights) && ($0.contains("1024 × 256 × 1152") || $0.contains("256 × 1152 × 1024")) })
        #expect(result.stderr.contains("convolutions \(engine)"))
        let summary = try #require(result.stderr.split(separator: "\n").first { $0.contains("products") && $0.contains("everything else") })
        let numbers = summary.split(whereSeparator: { " (%),:".contains($0) }).compactMap { Double($0) }
        // step S ms: products P ms (p %), everything else E ms (e %)
        #expect(numbers.count == 5, "\(summary)")
        if numbers.count == 5 {
            #expect(abs(numbers[0] - msPerStep) < 0.2 + msPerStep * 0.01)
            #expect(numbers[1] > 0 && numbers[1] <= numbers[0] && abs(numbers[1] + numbers[3] - numbers[0]) < 0.2)
        }
    }
}
