internal import CBLAS

/// The process-wide compute thread budget: OpenBLAS's workers and our own parallel loops.
public enum ComputeThreads {
    /// Uses `count` threads for BLAS and for TemporalContrast's own loops (they never run at once).
    public static func configure(_ count: Int) {
        GEMM.setThreads(count)
        Parallel.setWorkers(count)
    }

    /// The OpenBLAS kernel family in use (openblas_get_corename), e.g. "Haswell" or "SkylakeX".
    public static var blasCore: String { String(cString: openblas_get_corename()) }
}
