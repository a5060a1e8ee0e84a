internal import CBLAS

/// Single-precision matrix products through OpenBLAS (cblas_sgemm).
public enum GEMM {
    /// C = alpha · op(A) · op(B) + beta · C, all row-major and contiguous.
    ///
    /// Shapes: op(A) is m×k, op(B) is k×n, C is m×n. `transposeA` means A is stored k×m;
    /// `transposeB` means B is stored n×k.
    public static func multiply(
        _ a: [Float], _ b: [Float], into c: inout [Float], m: Int, n: Int, k: Int,
        transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1, beta: Float = 0
    ) {
        precondition(a.count >= m * k && b.count >= k * n && c.count >= m * n, "GEMM: buffers smaller than m×k, k×n, m×n")
        let lda = transposeA ? m : k
        let ldb = transposeB ? k : n
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, &c, Int32(n))
    }

    /// Sets OpenBLAS's worker thread count for this process (openblas_set_num_threads). Keep it so
    /// decode threads plus BLAS threads do not exceed the cores.
    public static func setThreads(_ count: Int) { openblas_set_num_threads(Int32(max(1, count))) }

    /// OpenBLAS's current worker thread count (openblas_get_num_threads).
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
