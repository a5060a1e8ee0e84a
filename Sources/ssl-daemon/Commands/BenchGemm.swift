import ArgumentParser
import Foundation
import TemporalContrast

/// `ssl-daemon bench gemm`: the machine's single-precision matrix-product ceiling, measured through
/// the same path the trainer's products take (OpenBLAS kernels, split across `--threads` workers).
struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "Time square sgemm products (C = A·B) and report GFLOP/s: the ceiling training is measured against.",
        discussion: #"Last line: {"m": M, "n": N, "k": K, "op": "NN", "gflops": G, "blas_core": "..."}; G is the best of --repeats timed products."#
    )

    @Option(help: "Matrix size N (N×N times N×N).")
    var size: Int = 1536

    @Option(help: "A product shape M,N,K instead of --size (as `bench train --profile` lists them).")
    var shape: String?

    @Option(help: "Transposes: NN, NT (B stored N×K), TN (A stored K×M) or TT.")
    var op: String = "NN"

    @Option(help: "Compute threads.")
    var threads: Int = 2

    @Option(help: "Timed products; the fastest one is reported.")
    var repeats: Int = 10

    func validate() throws {
        if size < 16 || size > 8192 { throw ValidationError("--size must be in 16...8192") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if repeats < 1 { throw ValidationError("--repeats must be at least 1") }
        if !["NN", "NT", "TN", "TT"].contains(op) { throw ValidationError("--op must be NN, NT, TN or TT") }
        _ = try dimensions()
    }

    func dimensions() throws -> (m: Int, n: Int, k: Int) {
        guard let shape else { return (size, size, size) }
        let parts = shape.split(separator: ",").compactMap { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ $0 >= 1 && $0 <= 1 << 20 }), parts[0] * parts[1] <= 1 << 28, parts[0] * parts[2] <= 1 << 28, parts[1] * parts[2] <= 1 << 28
        else { throw ValidationError("--shape must be M,N,K with positive sizes, each matrix at most 2^28 values") }
        return (parts[0], parts[1], parts[2])
    }

    func run() throws {
        ComputeThreads.configure(threads)
        let (m, n, k) = try dimensions()
        let ta = op.hasPrefix("T"), tb = op.hasSuffix("T")
        var rng = RandomSource(seed: 1)
        let a = (0..<(m * k)).map { _ in rng.normal() }, b = (0..<(k * n)).map { _ in rng.normal() }
        var c = [Float](repeating: 0, count: m * n)
        let product = { GEMM.multiply(a, b, into: &c, m: m, n: n, k: k, transposeA: ta, transposeB: tb) }
        product()
        var best = Double.infinity
        for _ in 0..<repeats {
            let started = DispatchTime.now().uptimeNanoseconds
            product()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        }
        let gflops = 2 * Double(m) * Double(n) * Double(k) / best / 1e9
        FileHandle.standardError.write(Data("bench gemm: \(m)×\(n)×\(k) \(op), \(threads) threads, BLAS core \(BLASKernelSelection.description), best of \(repeats)\n".utf8))
        print(#"{"m": \#(m), "n": \#(n), "k": \#(k), "op": "\#(op)", "threads": \#(threads), "gflops": \#((gflops * 10).rounded() / 10), "blas_core": "\#(ComputeThreads.blasCore)"}"#)
    }
}
