internal import CBLAS
internal import CMalloc
import Synchronization

/// How `Conv2d` computes convolutions.
public enum ConvolutionEngine: String, Sendable, CaseIterable, Codable {
    /// oneDNN's direct convolutions (its JIT kernels for the CPU at hand), one batch slice per
    /// worker; a shape oneDNN would only run with reference code uses `blas` instead.
    case onednn
    /// im2col rows times the weights with one sgemm (OpenBLAS), col2im for the input gradient.
    case blas
}

/// The process-wide compute thread budget: OpenBLAS's workers and our own parallel loops.
public enum ComputeThreads {
    /// Uses `count` threads for TemporalContrast's compute: matrix products are split across them
    /// (each slice a single-threaded OpenBLAS call) and so are the element-wise loops. Also keeps
    /// glibc from returning large buffers to the kernel after every step (each step allocates the
    /// same sizes again; fresh pages cost a fault and a zero-fill each).
    public static func configure(_ count: Int, convolutions: ConvolutionEngine = .onednn) {
        GEMM.setThreads(1)
        Parallel.setWorkers(count)
        convolutionEngine = convolutions
        // Measured on the reference workload: 738 → 1099 pairs/s with 2 threads.
        cmalloc_keep_large_blocks(32 << 20, 512 << 20)
    }

    private static let engine = Atomic<Int>(0)

    /// The engine convolution layers created from now on use (`configure` sets it).
    public static var convolutionEngine: ConvolutionEngine {
        get { engine.load(ordering: .relaxed) == 0 ? .onednn : .blas }
        set { engine.store(newValue == .onednn ? 0 : 1, ordering: .relaxed) }
    }

    /// Hands the heap's free pages back to the kernel. `configure` keeps up to 512 MiB of free heap
    /// for speed; over days, replay-buffer churn spreads that retention over every arena and the
    /// resident size creeps up. Called after each checkpoint (every few minutes), it costs the next
    /// step a few page faults.
    public static func releaseFreeMemory() {
        _ = cmalloc_release_free_memory()
    }

    /// The OpenBLAS kernel family in use (openblas_get_corename), e.g. "Haswell" or "SkylakeX".
    public static var blasCore: String { String(cString: openblas_get_corename()) }

    /// The kernel family to ask OpenBLAS for (through `OPENBLAS_CORETYPE`) when its own CPU
    /// detection fell back to a pre-AVX2 family on a CPU that has AVX2 or AVX-512, or nil when
    /// its choice stands.
    ///
    /// OpenBLAS picks kernels by CPU model number; a model newer than the library (Debian's 0.3.21
    /// on Emerald Rapids, model 207) or a hypervisor's generic CPU model gets "Prescott", whose SSE3
    /// sgemm runs at a fifth of the AVX-512 one. `cpuFlags` are /proc/cpuinfo's flags, which the
    /// kernel lists only when the OS saves the registers they need.
    public static func betterBLASCore(detected: String, cpuFlags: Set<String>) -> String? {
        let fallbacks: Set<String> = [
            "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge", "katmai", "coppermine",
            "northwood", "banias", "opteron", "opteron_sse3", "barcelona", "bobcat", "bulldozer", "piledriver", "unknown",
        ]
        guard fallbacks.contains(detected.lowercased()) else { return nil }
        if cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]) { return "SkylakeX" }
        if cpuFlags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }
}
