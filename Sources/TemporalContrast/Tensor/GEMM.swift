internal import CBLAS
import Dispatch
import Glibc

/// Single-precision matrix products through OpenBLAS (cblas_sgemm).
///
/// OpenBLAS runs single-threaded; large products are split across `Parallel` workers here instead:
/// by rows of C, or, for the weight-gradient shape Aᵀ·B with a long shared dimension, by slices of
/// that dimension whose partial products are added in a fixed order. OpenBLAS's own pool spins in
/// sched_yield between calls and fights our element-wise loops for the cores; this does not.
public enum GEMM {
    /// Below this many multiply-adds a product runs on the calling thread.
    static let parallelThreshold = 1 << 21

    /// C = alpha · op(A) · op(B) + beta · C, all row-major and contiguous.
    ///
    /// Shapes: op(A) is m×k, op(B) is k×n, C is m×n. `transposeA` means A is stored k×m;
    /// `transposeB` means B is stored n×k.
    public static func multiply(
        _ a: [Float], _ b: [Float], into c: inout [Float], m: Int, n: Int, k: Int,
        transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1, beta: Float = 0
    ) {
        multiply(a, b, into: &c, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta, workers: Parallel.workerCount)
    }

    /// `multiply` with an explicit worker count (tests exercise each split without touching the
    /// process-wide setting).
    static func multiply(
        _ a: [Float], _ b: [Float], into c: inout [Float], m: Int, n: Int, k: Int,
        transposeA: Bool, transposeB: Bool, alpha: Float, beta: Float, workers: Int
    ) {
        precondition(a.count >= m * k && b.count >= k * n && c.count >= m * n, "GEMM: buffers smaller than m×k, k×n, m×n")
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    GEMMProfile.record("sgemm " + (transposeA ? "T" : "N") + (transposeB ? "T" : "N"), m: m, n: n, k: k) {
                        multiply(ap.baseAddress!, bp.baseAddress!, cp.baseAddress!, m: m, n: n, k: k,
                                 transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta, workers: workers)
                    }
                }
            }
        }
    }

    /// The pointer form of `multiply`; the pointers are only used during the call.
    static func multiply(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int,
        transposeA: Bool, transposeB: Bool, alpha: Float, beta: Float, workers: Int = Parallel.workerCount
    ) {
        let work = m * n * k
        guard workers > 1, work >= parallelThreshold else {
            sgemm(a, b, c, m: m, n: n, k: k, lda: transposeA ? m : k, transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta)
            return
        }
        if m >= 4 * workers && m >= k {
            // Split the rows of C (and of op(A)).
            Parallel.forEachRange(m, minimumPerWorker: 8) { rows in
                let aStart = transposeA ? a + rows.lowerBound : a + rows.lowerBound * k
                sgemm(aStart, b, c + rows.lowerBound * n, m: rows.count, n: n, k: k, lda: transposeA ? m : k,
                      transposeA: transposeA, transposeB: transposeB, alpha: alpha, beta: beta)
            }
            return
        }
        // Long shared dimension (weight gradients): worker i multiplies slice i of k into its own
        // buffer; the partial products are then added in slice order (deterministic).
        let slices = min(workers, max(1, k / 64))
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: slices * m * n)
        defer { partial.deallocate() }
        nonisolated(unsafe) let (ua, ub, up) = (a, b, partial)
        DispatchQueue.concurrentPerform(iterations: slices) { i in
            let lower = k * i / slices, upper = k * (i + 1) / slices
            let aStart = transposeA ? ua + lower * m : ua + lower
            let bStart = transposeB ? ub + lower : ub + lower * n
            cblas_sgemm(
                CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(upper - lower), alpha, aStart, Int32(transposeA ? m : k),
                bStart, Int32(transposeB ? k : n), 0, up + i * m * n, Int32(n))
        }
        let total = m * n
        for i in 0..<total {
            var s: Float = beta == 0 ? 0 : beta * c[i]
            for w in 0..<slices { s += partial[w * total + i] }
            c[i] = s
        }
    }

    private static func sgemm(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int, lda: Int,
        transposeA: Bool, transposeB: Bool, alpha: Float, beta: Float
    ) {
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(transposeB ? k : n), beta, c, Int32(n))
    }

    /// Sets OpenBLAS's own worker thread count (openblas_set_num_threads). `ComputeThreads`
    /// keeps it at 1 and parallelises above BLAS instead.
    public static func setThreads(_ count: Int) { openblas_set_num_threads(Int32(max(1, count))) }

    /// OpenBLAS's current worker thread count (openblas_get_num_threads).
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
