import Testing
@testable import TemporalContrast

/// OpenBLAS is linked and called the way TemporalContrast expects (row-major, transposes).
@Suite("GEMM through OpenBLAS")
struct GEMMTests {
    static func naive(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, ta: Bool, tb: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k {
                    let x = ta ? a[p * m + i] : a[i * k + p]
                    let y = tb ? b[j * k + p] : b[p * n + j]
                    s += Double(x) * Double(y)
                }
                c[i * n + j] = Float(s)
            }
        }
        return c
    }

    @Test("matches a naive product for every transpose combination", arguments: [(false, false), (true, false), (false, true), (true, true)])
    func matchesNaive(ta: Bool, tb: Bool) {
        let m = 7, n = 5, k = 9
        var seed: UInt32 = 12345
        func r() -> Float {
            seed = seed &* 1_664_525 &+ 1_013_904_223
            return Float(seed >> 8) / Float(1 << 24) - 0.5
        }
        let a = (0..<(m * k)).map { _ in r() }, b = (0..<(k * n)).map { _ in r() }
        var c = [Float](repeating: 0, count: m * n)
        GEMM.multiply(a, b, into: &c, m: m, n: n, k: k, transposeA: ta, transposeB: tb)
        let expected = Self.naive(a, b, m: m, n: n, k: k, ta: ta, tb: tb)
        for (x, y) in zip(c, expected) { #expect(abs(x - y) < 1e-5) }
    }

    @Test("the k-split (weight-gradient shape) matches a naive product for worker counts that leave slices unused", arguments: [2, 3, 5])
    func kSplit(workers: Int) {
        // m < 4·workers and k > m select the k-split; k / 64 = 2 slices when workers is 3 or 5, the
        // case where partial buffers once went unwritten. beta = 1 checks accumulation too.
        let m = 6, n = 3000, k = 130
        #expect(m * n * k >= GEMM.parallelThreshold)
        var seed: UInt32 = 777
        func r() -> Float {
            seed = seed &* 1_664_525 &+ 1_013_904_223
            return Float(seed >> 8) / Float(1 << 24) - 0.5
        }
        let a = (0..<(m * k)).map { _ in r() }, b = (0..<(k * n)).map { _ in r() }
        let c0 = (0..<(m * n)).map { _ in r() }
        var c = c0
        GEMM.multiply(a, b, into: &c, m: m, n: n, k: k, transposeA: true, transposeB: false, alpha: 1, beta: 1, workers: workers)
        let expected = Self.naive(a, b, m: m, n: n, k: k, ta: true, tb: false)
        var worst: Float = 0
        for i in 0..<(m * n) { worst = max(worst, abs(c[i] - (expected[i] + c0[i]))) }
        #expect(worst < 1e-3, "max error \(worst) with \(workers) workers")
    }

    @Test("beta accumulates into C and the thread count is settable")
    func accumulateAndThreads() {
        var c: [Float] = [1, 1, 1, 1]
        GEMM.multiply([1, 2, 3, 4], [1, 0, 0, 1], into: &c, m: 2, n: 2, k: 2, beta: 1)
        #expect(c == [2, 3, 4, 5])
        GEMM.setThreads(1)
        #expect(GEMM.threads == 1)
    }
}


/// When OpenBLAS falls back to a generic kernel family, the daemon asks for the one the CPU runs.
@Suite("OpenBLAS kernel choice")
struct BLASCoreChoiceTests {
    static let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512_bf16"]

    @Test("a pre-AVX2 fallback on an AVX-512 CPU becomes SkylakeX; on an AVX2 CPU, Haswell")
    func fallbackReplaced() {
        #expect(ComputeThreads.betterBLASCore(detected: "Prescott", cpuFlags: Self.avx512) == "SkylakeX")
        #expect(ComputeThreads.betterBLASCore(detected: "Sandybridge", cpuFlags: ["avx", "avx2", "fma"]) == "Haswell")
        #expect(ComputeThreads.betterBLASCore(detected: "Core2", cpuFlags: ["avx512f", "avx2", "fma"]) == "Haswell")
    }

    @Test("a kernel family OpenBLAS chose on purpose stands, and a CPU without AVX2 keeps the fallback")
    func choiceStands() {
        for core in ["Haswell", "SkylakeX", "Cooperlake", "SapphireRapids", "Zen"] {
            #expect(ComputeThreads.betterBLASCore(detected: core, cpuFlags: Self.avx512) == nil)
        }
        #expect(ComputeThreads.betterBLASCore(detected: "Prescott", cpuFlags: ["sse3", "avx"]) == nil)
        #expect(ComputeThreads.betterBLASCore(detected: "Prescott", cpuFlags: []) == nil)
    }
}
