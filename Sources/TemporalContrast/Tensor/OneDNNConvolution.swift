internal import CDNNL

/// oneDNN's direct convolution for one geometry: forward, backward data and backward weights on
/// NHWC activations and `[out, kh, kw, in]` weights (oneDNN's `nhwc` and `ohwi`), no bias.
///
/// oneDNN keeps weights in a blocked layout of its choosing; each call reorders ours into it (or
/// the weight gradient out of it), which costs little next to the convolution. A plan is used by
/// one thread at a time and runs on that thread alone (an OpenMP team of 1, and its own scratchpad),
/// so `Conv2d` runs one plan per worker on slices of the batch, in parallel. Every oneDNN object
/// is owned here and destroyed in `deinit`; the pointers passed to the calls are used only during them.
final class OneDNNConvolution {
    /// A convolution's shape: batch, input height, width and channels, output channels, kernel
    /// side, stride and padding (symmetric, both axes).
    struct Shape: Hashable, Sendable {
        let n, h, w, c, out, kernel, stride, padding: Int
        var oh: Int { (h + 2 * padding - kernel) / stride + 1 }
        var ow: Int { (w + 2 * padding - kernel) / stride + 1 }
    }

    let shape: Shape
    /// oneDNN's implementation names (forward, backward data, backward weights), e.g. "jit:avx512_core".
    private(set) var implementations: [String] = []

    private var primitives: [dnnl_primitive_t?] = []
    private var descriptors: [dnnl_primitive_desc_t?] = []
    private var memories: [dnnl_memory_t?] = []
    private var stream: dnnl_stream_t?
    private var scratch: UnsafeMutableRawPointer?

    private var forwardPrimitive: dnnl_primitive_t?, dataPrimitive: dnnl_primitive_t?, weightsPrimitive: dnnl_primitive_t?
    /// Reorders of our weights into each direction's layout (nil when the layouts agree) and of the
    /// weight gradient back into ours.
    private var toForward: dnnl_primitive_t?, toData: dnnl_primitive_t?, fromWeights: dnnl_primitive_t?
    private var src: dnnl_memory_t?, dst: dnnl_memory_t?, userWeights: dnnl_memory_t?
    private var forwardWeights: dnnl_memory_t?, dataWeights: dnnl_memory_t?, diffWeights: dnnl_memory_t?
    private var scratchpad: dnnl_memory_t?

    /// One CPU engine for the process (oneDNN's engines are thread-safe).
    nonisolated(unsafe) private static let engine: dnnl_engine_t? = {
        var engine: dnnl_engine_t?
        return dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success ? engine : nil
    }()

    /// Builds the three primitives, or returns nil when oneDNN cannot (no CPU engine, an
    /// unsupported shape) or would only run its slow reference code for one of them.
    init?(_ shape: Shape) {
        self.shape = shape
        guard let engine = Self.engine, shape.oh > 0, shape.ow > 0 else { return nil }
        omp_set_num_threads(1)
        var srcMD = dnnl_memory_desc_t(), dstMD = dnnl_memory_desc_t(), anyWeightsMD = dnnl_memory_desc_t(), userWeightsMD = dnnl_memory_desc_t()
        var srcDims: [Int64] = [shape.n, shape.c, shape.h, shape.w].map { Int64($0) }
        var dstDims: [Int64] = [shape.n, shape.out, shape.oh, shape.ow].map { Int64($0) }
        var weightDims: [Int64] = [shape.out, shape.c, shape.kernel, shape.kernel].map { Int64($0) }
        var ok = Self.dims(&srcDims) { dnnl_memory_desc_init_by_tag(&srcMD, 4, $0, dnnl_f32, dnnl_nhwc) == dnnl_success }
        ok = ok && Self.dims(&dstDims) { dnnl_memory_desc_init_by_tag(&dstMD, 4, $0, dnnl_f32, dnnl_nhwc) == dnnl_success }
        ok = ok && Self.dims(&weightDims) { dnnl_memory_desc_init_by_tag(&anyWeightsMD, 4, $0, dnnl_f32, dnnl_format_tag_any) == dnnl_success }
        ok = ok && Self.dims(&weightDims) { dnnl_memory_desc_init_by_tag(&userWeightsMD, 4, $0, dnnl_f32, dnnl_ohwi) == dnnl_success }
        guard ok else { return nil }

        var attr: dnnl_primitive_attr_t?
        guard dnnl_primitive_attr_create(&attr) == dnnl_success else { return nil }
        defer { dnnl_primitive_attr_destroy(attr) }
        guard dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success else { return nil }

        var strides: [Int64] = [Int64(shape.stride), Int64(shape.stride)], padding: [Int64] = [Int64(shape.padding), Int64(shape.padding)]
        var forwardOp = dnnl_convolution_desc_t(), dataOp = dnnl_convolution_desc_t(), weightsOp = dnnl_convolution_desc_t()
        ok = Self.dims(&strides) { s in
            Self.dims(&padding) { p in
                dnnl_convolution_forward_desc_init(&forwardOp, dnnl_forward_training, dnnl_convolution_direct, &srcMD, &anyWeightsMD, nil, &dstMD, s, p, p) == dnnl_success
                    && dnnl_convolution_backward_data_desc_init(&dataOp, dnnl_convolution_direct, &srcMD, &anyWeightsMD, &dstMD, s, p, p) == dnnl_success
                    && dnnl_convolution_backward_weights_desc_init(&weightsOp, dnnl_convolution_direct, &srcMD, &anyWeightsMD, nil, &dstMD, s, p, p) == dnnl_success
            }
        }
        guard ok else { return nil }
        guard let forwardPD = make(&forwardOp, attr: attr, hint: nil),
              let dataPD = make(&dataOp, attr: attr, hint: forwardPD),
              let weightsPD = make(&weightsOp, attr: attr, hint: forwardPD)
        else { return nil }
        implementations = [forwardPD, dataPD, weightsPD].map(Self.implementation)
        // The reference implementations are slower than our own im2col + sgemm.
        guard !implementations.contains(where: { $0.hasPrefix("ref") }) else { return nil }

        guard let forwardWeightsMD = dnnl_primitive_desc_query_md(forwardPD, dnnl_query_weights_md, 0),
              let dataWeightsMD = dnnl_primitive_desc_query_md(dataPD, dnnl_query_weights_md, 0),
              let diffWeightsMD = dnnl_primitive_desc_query_md(weightsPD, dnnl_query_diff_weights_md, 0)
        else { return nil }
        src = memory(&srcMD, allocate: false)
        dst = memory(&dstMD, allocate: false)
        userWeights = memory(&userWeightsMD, allocate: false)
        guard src != nil, dst != nil, userWeights != nil else { return nil }
        if dnnl_memory_desc_equal(forwardWeightsMD, &userWeightsMD) == 0 {
            forwardWeights = memory(forwardWeightsMD, allocate: true)
            toForward = reorder(from: &userWeightsMD, to: forwardWeightsMD, attr: attr)
            guard forwardWeights != nil, toForward != nil else { return nil }
        }
        if dnnl_memory_desc_equal(dataWeightsMD, &userWeightsMD) == 0 {
            dataWeights = memory(dataWeightsMD, allocate: true)
            toData = reorder(from: &userWeightsMD, to: dataWeightsMD, attr: attr)
            guard dataWeights != nil, toData != nil else { return nil }
        }
        if dnnl_memory_desc_equal(diffWeightsMD, &userWeightsMD) == 0 {
            diffWeights = memory(diffWeightsMD, allocate: true)
            fromWeights = reorder(from: diffWeightsMD, to: &userWeightsMD, attr: attr)
            guard diffWeights != nil, fromWeights != nil else { return nil }
        }
        forwardPrimitive = primitive(forwardPD)
        dataPrimitive = primitive(dataPD)
        weightsPrimitive = primitive(weightsPD)
        guard forwardPrimitive != nil, dataPrimitive != nil, weightsPrimitive != nil else { return nil }

        // One scratchpad, as large as the largest any primitive here asks for.
        let sizes = descriptors.map { pd -> Int in
            guard let md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) else { return 0 }
            return Int(dnnl_memory_desc_get_size(md))
        }
        let bytes = max(64, sizes.max() ?? 0)
        scratch = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        var scratchDims: [Int64] = [Int64(bytes)]
        var scratchMD = dnnl_memory_desc_t()
        guard Self.dims(&scratchDims, { dnnl_memory_desc_init_by_tag(&scratchMD, 1, $0, dnnl_u8, dnnl_a) == dnnl_success }) else { return nil }
        var scratchMemory: dnnl_memory_t?
        guard dnnl_memory_create(&scratchMemory, &scratchMD, engine, scratch) == dnnl_success else { return nil }
        scratchpad = scratchMemory
        memories.append(scratchMemory)
        guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success else { return nil }
    }

    deinit {
        for p in primitives { dnnl_primitive_destroy(p) }
        for d in descriptors { dnnl_primitive_desc_destroy(d) }
        for m in memories { dnnl_memory_destroy(m) }
        if let stream { dnnl_stream_destroy(stream) }
        scratch?.deallocate()
    }

    /// y = conv(x, W): x is `[n, h, w, c]`, y `[n, oh, ow, out]`, W `[out, k, k, c]`.
    func forward(_ x: UnsafePointer<Float>, weights: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        omp_set_num_threads(1)
        let w = weightsMemory(weights, reorder: toForward, into: forwardWeights)
        bind(src, x)
        bind(dst, UnsafePointer(y))
        run(forwardPrimitive, [(DNNL_ARG_SRC, src), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_DST, dst)])
    }

    /// dx = convᵀ(dy, W), overwriting `dx` (`[n, h, w, c]`).
    func backwardData(_ dy: UnsafePointer<Float>, weights: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>) {
        omp_set_num_threads(1)
        let w = weightsMemory(weights, reorder: toData, into: dataWeights)
        bind(dst, dy)
        bind(src, UnsafePointer(dx))
        run(dataPrimitive, [(DNNL_ARG_DIFF_DST, dst), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_DIFF_SRC, src)])
    }

    /// dW = Σ over the batch of x ⋆ dy, overwriting `dw` (`[out, k, k, c]`).
    func backwardWeights(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, into dw: UnsafeMutablePointer<Float>) {
        omp_set_num_threads(1)
        bind(src, x)
        bind(dst, dy)
        bind(userWeights, UnsafePointer(dw))
        run(weightsPrimitive, [(DNNL_ARG_SRC, src), (DNNL_ARG_DIFF_DST, dst), (DNNL_ARG_DIFF_WEIGHTS, diffWeights ?? userWeights)])
        if let fromWeights { run(fromWeights, [(DNNL_ARG_FROM, diffWeights), (DNNL_ARG_TO, userWeights)]) }
    }

    // MARK: - oneDNN plumbing

    /// Our weights as a direction's primitive wants them: reordered into its layout when it has
    /// one of its own, else our buffer as it is.
    private func weightsMemory(_ weights: UnsafePointer<Float>, reorder: dnnl_primitive_t?, into blocked: dnnl_memory_t?) -> dnnl_memory_t? {
        bind(userWeights, weights)
        guard let reorder else { return userWeights }
        run(reorder, [(DNNL_ARG_FROM, userWeights), (DNNL_ARG_TO, blocked)])
        return blocked
    }

    private static func dims<R>(_ values: inout [Int64], _ body: (UnsafePointer<Int64>) -> R) -> R {
        values.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    private static func implementation(_ pd: dnnl_primitive_desc_t) -> String {
        var name: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success, let name else { return "ref?" }
        return String(cString: name)
    }

    private func make(_ op: inout dnnl_convolution_desc_t, attr: dnnl_primitive_attr_t?, hint: dnnl_primitive_desc_t?) -> dnnl_primitive_desc_t? {
        var pd: dnnl_primitive_desc_t?
        guard dnnl_primitive_desc_create(&pd, &op, attr, Self.engine, hint) == dnnl_success else { return nil }
        descriptors.append(pd)
        return pd
    }

    private func memory(_ md: UnsafePointer<dnnl_memory_desc_t>, allocate: Bool) -> dnnl_memory_t? {
        var m: dnnl_memory_t?
        // DNNL_MEMORY_ALLOCATE is ((void *)(size_t)-1), DNNL_MEMORY_NONE is NULL.
        let handle = allocate ? UnsafeMutableRawPointer(bitPattern: UInt.max) : nil
        guard dnnl_memory_create(&m, md, Self.engine, handle) == dnnl_success else { return nil }
        memories.append(m)
        return m
    }

    private func reorder(from: UnsafePointer<dnnl_memory_desc_t>, to: UnsafePointer<dnnl_memory_desc_t>, attr: dnnl_primitive_attr_t?) -> dnnl_primitive_t? {
        var pd: dnnl_primitive_desc_t?
        guard dnnl_reorder_primitive_desc_create(&pd, from, Self.engine, to, Self.engine, attr) == dnnl_success else { return nil }
        descriptors.append(pd)
        return primitive(pd)
    }

    private func primitive(_ pd: dnnl_primitive_desc_t?) -> dnnl_primitive_t? {
        var p: dnnl_primitive_t?
        guard dnnl_primitive_create(&p, pd) == dnnl_success else { return nil }
        primitives.append(p)
        return p
    }

    private func bind(_ memory: dnnl_memory_t?, _ pointer: UnsafePointer<Float>) {
        dnnl_memory_set_data_handle_v2(memory, UnsafeMutableRawPointer(mutating: pointer), stream)
    }

    private func run(_ primitive: dnnl_primitive_t?, _ arguments: [(Int32, dnnl_memory_t?)]) {
        var args = arguments.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1) }
        args.append(dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratchpad))
        let status = dnnl_primitive_execute(primitive, stream, Int32(args.count), &args)
        precondition(status == dnnl_success, "oneDNN convolution \(shape): execute failed with status \(status.rawValue)")
        dnnl_stream_wait(stream)
    }
}
