import Dispatch
import Glibc
import Synchronization

/// 2-D convolution on NHWC tensors: `[n, h, w, inChannels]` → `[n, oh, ow, outChannels]` with
/// `oh = (h + 2·padding − kernel) / stride + 1` (likewise `ow`).
///
/// `weight` is `[out, kernel, kernel, in]` (channels last; export permutes it to PyTorch's
/// `[out, in, kh, kw]`), `bias` is `[out]`. Computed as im2col rows (`kernel·kernel·in` values per
/// output position) times Wᵀ with one sgemm; backward reuses the cached rows for dW and scatters
/// dRows back with col2im. With the `onednn` engine (and no bias) oneDNN's direct convolutions do
/// the same three products without the im2col rows, one batch slice per `Parallel` worker; a plan
/// binds its buffers per call, so a layer on oneDNN runs one pass at a time (the trainer's thread).
/// Initialised with He-normal (fan-out), as torchvision's ResNets are.
public final class Conv2d: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    /// Fixed at creation (`ComputeThreads.convolutionEngine` unless given).
    public let engine: ConvolutionEngine

    /// oneDNN plans by (chunk shape, worker), made on first use; nil remembers a shape oneDNN
    /// declined. Batch sizes vary from step to step; a worker's slice runs as chunks of
    /// power-of-two sizes up to `largestChunk`, so a geometry needs at most 7 plans per worker
    /// however the batch sizes vary. A plan holds JIT code, reordered weights and a scratchpad:
    /// one per batch size seen made the daemon's memory climb for hours. The least recently used
    /// are still dropped beyond `planLimit` (a forward pass's cache keeps its own plans for the
    /// backward pass).
    private let plans = Mutex(PlanCache())
    private static let planLimit = 32
    static let largestChunk = 64
    private struct PlanCache {
        var entries: [PlanKey: (plan: OneDNNConvolution?, used: Int)] = [:]
        var clock = 0
    }
    /// A worker's part of the batch, as consecutive chunks each with its plan.
    typealias Chunk = (samples: Range<Int>, plan: OneDNNConvolution)
    typealias Slices = [[Chunk]]
    /// Slices of the batch for oneDNN instead of `Parallel.workerCount` (tests cover the split).
    nonisolated(unsafe) var workersOverride: Int?
    private struct PlanKey: Hashable {
        let shape: OneDNNConvolution.Shape
        let worker: Int
    }

    public init(
        _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = false,
        engine: ConvolutionEngine = ComputeThreads.convolutionEngine, name: String, rng: inout RandomSource
    ) {
        self.engine = engine
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        let k = kernel * kernel * inChannels
        let std = (2 / Float(kernel * kernel * outChannels)).squareRoot()
        weight = Parameter(
            name: "\(name).weight", shape: [outChannels, kernel, kernel, inChannels],
            value: (0..<(outChannels * k)).map { _ in rng.normal() * std }, decays: true)
        self.bias = bias ? Parameter(name: "\(name).bias", shape: [outChannels], value: [Float](repeating: 0, count: outChannels), decays: false) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    struct Geometry {
        let n, h, w, c, oh, ow: Int
        var rows: Int { n * oh * ow }
    }

    func geometry(_ shape: [Int]) -> Geometry {
        precondition(shape.count == 4 && shape[3] == inChannels, "Conv2d \(weight.name): expected [n, h, w, \(inChannels)], got \(shape)")
        let h = shape[1], w = shape[2]
        return Geometry(
            n: shape[0], h: h, w: w, c: inChannels,
            oh: (h + 2 * padding - kernel) / stride + 1, ow: (w + 2 * padding - kernel) / stride + 1)
    }

    /// A 1×1, stride-1, unpadded convolution needs no im2col: the input rows are the columns.
    private var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }

    final class Cache: LayerCache {
        /// The im2col rows (BLAS path) or nil (oneDNN path, which reads `input`).
        let columns: Tensor?
        let input: Tensor
        /// The oneDNN plans the forward pass ran (the backward pass runs the same).
        let slices: Slices?
        init(columns: Tensor?, input: Tensor, slices: Slices? = nil) {
            self.columns = columns
            self.input = input
            self.slices = slices
        }
    }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) {
        let g = geometry(input.shape)
        if let slices = oneDNNSlices(g) { return (oneDNNForward(input, g, slices), Cache(columns: nil, input: input, slices: slices)) }
        let columns = isPointwise ? input.reshaped([g.rows, inChannels]) : im2col(input, g)
        return (multiply(columns, g), Cache(columns: columns, input: input))
    }

    public func infer(_ input: Tensor) -> Tensor {
        let g = geometry(input.shape)
        if let slices = oneDNNSlices(g) { return oneDNNForward(input, g, slices) }
        return multiply(isPointwise ? input.reshaped([g.rows, inChannels]) : im2col(input, g), g)
    }

    private func multiply(_ columns: Tensor, _ g: Geometry) -> Tensor {
        let k = kernel * kernel * inChannels
        var y = Tensor(shape: [g.n, g.oh, g.ow, outChannels]) { _ in }
        if let bias {
            y.storage.withUnsafeMutableBufferPointer { yb in
                for r in 0..<g.rows { for o in 0..<outChannels { yb[r * outChannels + o] = bias.value[o] } }
            }
        }
        GEMM.multiply(columns.storage, weight.value, into: &y.storage, m: g.rows, n: outChannels, k: k, transposeB: true, beta: bias == nil ? 0 : 1)
        return y
    }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        let cache = cache as! Cache
        let g = geometry(cache.input.shape)
        guard let columns = cache.columns else { return oneDNNBackward(gradOutput, cache.input, g, cache.slices!, inputGradient: inputGradient) }
        let k = kernel * kernel * inChannels
        // dW[out, K] += dYᵀ · columns
        GEMM.multiply(gradOutput.storage, columns.storage, into: &weight.gradient, m: outChannels, n: k, k: g.rows, transposeA: true, beta: 1)
        if let bias {
            gradOutput.storage.withUnsafeBufferPointer { gb in
                bias.gradient.withUnsafeMutableBufferPointer { db in
                    for r in 0..<g.rows { for o in 0..<outChannels { db[o] += gb[r * outChannels + o] } }
                }
            }
        }
        guard inputGradient else { return nil }
        // dColumns = dY · W, then scatter back onto the input grid.
        var dColumns = Tensor(shape: [g.rows, k]) { _ in }
        GEMM.multiply(gradOutput.storage, weight.value, into: &dColumns.storage, m: g.rows, n: k, k: outChannels)
        return isPointwise ? dColumns.reshaped(cache.input.shape) : col2im(dColumns, g)
    }

    // MARK: - oneDNN

    /// A contiguous slice of the batch per worker, each cut into chunks with a plan each, or nil
    /// when this layer runs on BLAS (the engine, a bias, or a shape oneDNN declines).
    private func oneDNNSlices(_ g: Geometry) -> Slices? {
        guard engine == .onednn, bias == nil, g.n > 0 else { return nil }
        let workers = min(workersOverride ?? Parallel.workerCount, g.n)
        var slices: Slices = []
        for i in 0..<workers {
            var chunks: [Chunk] = []
            for samples in Self.chunks(of: (g.n * i / workers)..<(g.n * (i + 1) / workers)) {
                let key = PlanKey(
                    shape: .init(n: samples.count, h: g.h, w: g.w, c: g.c, out: outChannels, kernel: kernel, stride: stride, padding: padding),
                    worker: i)
                guard let plan = plan(for: key) else { return nil }
                chunks.append((samples, plan))
            }
            slices.append(chunks)
        }
        return slices
    }

    /// `range` cut into consecutive chunks of power-of-two sizes, largest first (27 → 16, 8, 2, 1).
    static func chunks(of range: Range<Int>) -> [Range<Int>] {
        var out: [Range<Int>] = [], start = range.lowerBound
        while start < range.upperBound {
            var size = largestChunk
            while size > range.upperBound - start { size /= 2 }
            out.append(start..<(start + size))
            start += size
        }
        return out
    }

    private func plan(for key: PlanKey) -> OneDNNConvolution? {
        plans.withLock { cache -> OneDNNConvolution? in
            cache.clock += 1
            if let known = cache.entries[key] {
                cache.entries[key]?.used = cache.clock
                return known.plan
            }
            if cache.entries.count >= Self.planLimit, let oldest = cache.entries.min(by: { $0.value.used < $1.value.used })?.key {
                cache.entries[oldest] = nil
            }
            let made = OneDNNConvolution(key.shape)
            cache.entries[key] = (made, cache.clock)
            return made
        }
    }

    /// oneDNN's implementation names (forward, backward data, backward weights) for an input of
    /// `shape`, or nil when this layer computes it with BLAS.
    func oneDNNImplementations(for shape: [Int]) -> [String]? {
        oneDNNSlices(geometry(shape))?.first?.first?.plan.implementations
    }

    /// Shapes with a plan (or a refusal) in the cache.
    var oneDNNPlanCount: Int { plans.withLock { $0.entries.count } }

    /// Runs `body(index, chunk)` for every chunk, each worker's slice on its own thread, in
    /// parallel; `index` numbers the chunks across slices in batch order. Each chunk's plan is used
    /// by this call only.
    private func onChunks(_ slices: Slices, _ body: (Int, Chunk) -> Void) {
        let firsts = slices.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        // Slices write disjoint rows (or their own buffers) and concurrentPerform returns when all
        // are done, so sharing the non-Sendable closure and plans is safe.
        if slices.count == 1 {
            for (j, chunk) in slices[0].enumerated() { body(j, chunk) }
            return
        }
        nonisolated(unsafe) let (shared, parts) = (body, slices)
        DispatchQueue.concurrentPerform(iterations: parts.count) { w in
            for (j, chunk) in parts[w].enumerated() { shared(firsts[w] + j, chunk) }
        }
    }

    private func oneDNNForward(_ input: Tensor, _ g: Geometry, _ slices: Slices) -> Tensor {
        let inItem = g.h * g.w * g.c, outItem = g.oh * g.ow * outChannels
        return Tensor(shape: [g.n, g.oh, g.ow, outChannels]) { out in
            input.storage.withUnsafeBufferPointer { xb in
                weight.value.withUnsafeBufferPointer { wb in
                    let x = xb.baseAddress!, w = wb.baseAddress!, y = out.baseAddress!
                    GEMMProfile.record("conv forward (\(slices[0][0].plan.implementations[0]))", m: g.rows, n: outChannels, k: kernel * kernel * g.c) {
                        onChunks(slices) { _, s in
                            s.plan.forward(x + s.samples.lowerBound * inItem, weights: w, into: y + s.samples.lowerBound * outItem)
                        }
                    }
                }
            }
        }
    }

    private func oneDNNBackward(_ gradOutput: Tensor, _ input: Tensor, _ g: Geometry, _ slices: Slices, inputGradient: Bool) -> Tensor? {
        let inItem = g.h * g.w * g.c, outItem = g.oh * g.ow * outChannels, wCount = weight.value.count
        // Each chunk's weight gradient goes to its own buffer; they are added in batch order.
        let chunkCount = slices.reduce(0) { $0 + $1.count }
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: chunkCount * wCount)
        defer { partial.deallocate() }
        func run(into dx: UnsafeMutablePointer<Float>?) {
            input.storage.withUnsafeBufferPointer { xb in
                gradOutput.storage.withUnsafeBufferPointer { gb in
                    weight.value.withUnsafeBufferPointer { wb in
                        let x = xb.baseAddress!, dy = gb.baseAddress!, w = wb.baseAddress!
                        let names = slices[0][0].plan.implementations
                        GEMMProfile.record("conv backward (\(names[2])\(dx == nil ? "" : ", " + names[1]))", m: g.rows, n: outChannels, k: kernel * kernel * g.c,
                                           multiplies: dx == nil ? 1 : 2) {
                            onChunks(slices) { i, s in
                                let first = s.samples.lowerBound
                                s.plan.backwardWeights(x + first * inItem, dy + first * outItem, into: partial + i * wCount)
                                if let dx { s.plan.backwardData(dy + first * outItem, weights: w, into: dx + first * inItem) }
                            }
                        }
                    }
                }
            }
        }
        var dx: Tensor?
        if inputGradient {
            dx = Tensor(shape: input.shape) { out in run(into: out.baseAddress!) }
        } else {
            run(into: nil)
        }
        weight.gradient.withUnsafeMutableBufferPointer { gw in
            for i in 0..<chunkCount { Vector.axpy(1, UnsafePointer(partial + i * wCount), gw.baseAddress!, count: wCount) }
        }
        return dx
    }

    /// Rows of `kernel·kernel·c` input values, one per output position; zeros outside the image.
    func im2col(_ input: Tensor, _ g: Geometry) -> Tensor {
        let k = kernel * kernel * g.c
        let (kernel, stride, padding) = (self.kernel, self.stride, self.padding)
        return Tensor(shape: [g.rows, k]) { out in
            input.storage.withUnsafeBufferPointer { xb in
                let x = xb.baseAddress!, col = out.baseAddress!
                Parallel.forEachRange(g.n) { samples in
                    for n in samples {
                        for oy in 0..<g.oh {
                            for ox in 0..<g.ow {
                                var dst = col + ((n * g.oh + oy) * g.ow + ox) * k
                                for ky in 0..<kernel {
                                    let iy = oy * stride - padding + ky
                                    if iy < 0 || iy >= g.h {
                                        dst.update(repeating: 0, count: kernel * g.c)
                                        dst += kernel * g.c
                                        continue
                                    }
                                    let ix0 = ox * stride - padding
                                    let row = x + ((n * g.h + iy) * g.w) * g.c
                                    if ix0 >= 0 && ix0 + kernel <= g.w {
                                        // The whole kernel row is inside: one contiguous copy in NHWC.
                                        dst.update(from: row + ix0 * g.c, count: kernel * g.c)
                                        dst += kernel * g.c
                                    } else {
                                        for kx in 0..<kernel {
                                            let ix = ix0 + kx
                                            if ix < 0 || ix >= g.w {
                                                dst.update(repeating: 0, count: g.c)
                                            } else {
                                                dst.update(from: row + ix * g.c, count: g.c)
                                            }
                                            dst += g.c
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of im2col: adds each row's values back to the input positions they came from.
    func col2im(_ columns: Tensor, _ g: Geometry) -> Tensor {
        let k = kernel * kernel * g.c
        let (kernel, stride, padding) = (self.kernel, self.stride, self.padding)
        var dx = Tensor(zeros: [g.n, g.h, g.w, g.c])
        dx.storage.withUnsafeMutableBufferPointer { db in
            columns.storage.withUnsafeBufferPointer { cb in
                let dxp = db.baseAddress!, col = cb.baseAddress!
                // Each sample's rows only touch that sample's pixels: split by sample, no races.
                Parallel.forEachRange(g.n) { samples in
                    for n in samples {
                        for oy in 0..<g.oh {
                            for ox in 0..<g.ow {
                                var src = col + ((n * g.oh + oy) * g.ow + ox) * k
                                for ky in 0..<kernel {
                                    let iy = oy * stride - padding + ky
                                    if iy < 0 || iy >= g.h {
                                        src += kernel * g.c
                                        continue
                                    }
                                    let row = dxp + ((n * g.h + iy) * g.w) * g.c
                                    for kx in 0..<kernel {
                                        let ix = ox * stride - padding + kx
                                        if ix >= 0 && ix < g.w {
                                            let d = row + ix * g.c
                                            for c in 0..<g.c { d[c] += src[c] }
                                        }
                                        src += g.c
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}
