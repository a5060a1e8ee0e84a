/// Mean over all positions of an NHWC tensor: `[n, h, w, c]` → `[n, c]`.
public final class GlobalAveragePool: Layer {
    public init() {}
    public var parameters: [Parameter] { [] }

    public func infer(_ input: Tensor) -> Tensor {
        let n = input.batch, c = input.shape.last!, positions = input.itemSize / c
        var y = Tensor(zeros: [n, c])
        let inv = 1 / Float(positions)
        input.storage.withUnsafeBufferPointer { x in
            y.storage.withUnsafeMutableBufferPointer { out in
                for s in 0..<n {
                    for p in 0..<positions { for j in 0..<c { out[s * c + j] += x[(s * positions + p) * c + j] } }
                    for j in 0..<c { out[s * c + j] *= inv }
                }
            }
        }
        return y
    }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) { (infer(input), TensorCache(Tensor(shape: [input.shape.count], storage: input.shape.map(Float.init)))) }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        let shape = (cache as! TensorCache).tensor.storage.map { Int($0) }
        let n = shape[0], c = shape.last!, positions = shape.dropFirst().reduce(1, *) / c
        let inv = 1 / Float(positions)
        return Tensor(shape: shape) { dx in
            for s in 0..<n {
                for p in 0..<positions { for j in 0..<c { dx[(s * positions + p) * c + j] = gradOutput.storage[s * c + j] * inv } }
            }
        }
    }
}

/// Max or average pooling over `kernel × kernel` windows of an NHWC tensor, with stride and zero
/// padding (padded positions never win a max and count as zeros in an average, as in PyTorch's
/// default `count_include_pad=True`).
public final class Pool2d: Layer {
    public enum Mode: Sendable { case max, average }
    public let mode: Mode, kernel: Int, stride: Int, padding: Int

    public init(_ mode: Mode, kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.mode = mode
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
    }

    public var parameters: [Parameter] { [] }

    final class Cache: LayerCache {
        let inputShape: [Int]
        /// For max pooling: flat input index of each output's winner.
        let argmax: [Int32]
        init(inputShape: [Int], argmax: [Int32]) {
            self.inputShape = inputShape
            self.argmax = argmax
        }
    }

    private func run(_ input: Tensor, recordArgmax: Bool) -> (Tensor, [Int32]) {
        let n = input.shape[0], h = input.shape[1], w = input.shape[2], c = input.shape[3]
        let oh = (h + 2 * padding - kernel) / stride + 1, ow = (w + 2 * padding - kernel) / stride + 1
        var y = Tensor(zeros: [n, oh, ow, c])
        var argmax = [Int32](repeating: -1, count: recordArgmax ? y.count : 0)
        let inv = 1 / Float(kernel * kernel)
        for s in 0..<n {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    for j in 0..<c {
                        var best = -Float.infinity, bestIndex = -1, sum: Float = 0
                        for ky in 0..<kernel {
                            let iy = oy * stride - padding + ky
                            if iy < 0 || iy >= h { continue }
                            for kx in 0..<kernel {
                                let ix = ox * stride - padding + kx
                                if ix < 0 || ix >= w { continue }
                                let index = ((s * h + iy) * w + ix) * c + j
                                let v = input.storage[index]
                                sum += v
                                if v > best {
                                    best = v
                                    bestIndex = index
                                }
                            }
                        }
                        let o = ((s * oh + oy) * ow + ox) * c + j
                        y.storage[o] = mode == .max ? best : sum * inv
                        if recordArgmax { argmax[o] = Int32(bestIndex) }
                    }
                }
            }
        }
        return (y, argmax)
    }

    public func infer(_ input: Tensor) -> Tensor { run(input, recordArgmax: false).0 }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) {
        let (y, argmax) = run(input, recordArgmax: mode == .max)
        return (y, Cache(inputShape: input.shape, argmax: argmax))
    }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        let cache = cache as! Cache
        var dx = Tensor(zeros: cache.inputShape)
        if mode == .max {
            for (o, i) in cache.argmax.enumerated() where i >= 0 { dx.storage[Int(i)] += gradOutput.storage[o] }
            return dx
        }
        let (n, h, w, c) = (cache.inputShape[0], cache.inputShape[1], cache.inputShape[2], cache.inputShape[3])
        let oh = gradOutput.shape[1], ow = gradOutput.shape[2]
        let inv = 1 / Float(kernel * kernel)
        for s in 0..<n {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    for ky in 0..<kernel {
                        let iy = oy * stride - padding + ky
                        if iy < 0 || iy >= h { continue }
                        for kx in 0..<kernel {
                            let ix = ox * stride - padding + kx
                            if ix < 0 || ix >= w { continue }
                            for j in 0..<c {
                                dx.storage[((s * h + iy) * w + ix) * c + j] += gradOutput.storage[((s * oh + oy) * ow + ox) * c + j] * inv
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}

/// Rows scaled to unit L2 norm: y = x / max(‖x‖, ε) on `[rows, features]`.
public final class L2Normalize: Layer {
    public let epsilon: Float
    public init(epsilon: Float = 1e-12) { self.epsilon = epsilon }
    public var parameters: [Parameter] { [] }

    final class Cache: LayerCache {
        let output: Tensor, norms: [Float]
        init(output: Tensor, norms: [Float]) {
            self.output = output
            self.norms = norms
        }
    }

    private func run(_ input: Tensor) -> (Tensor, [Float]) {
        let d = input.shape.last!, rows = input.count / d
        var y = input, norms = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            var s: Float = 0
            for j in 0..<d { s += input.storage[r * d + j] * input.storage[r * d + j] }
            let norm = max(s.squareRoot(), epsilon)
            norms[r] = norm
            for j in 0..<d { y.storage[r * d + j] /= norm }
        }
        return (y, norms)
    }

    public func infer(_ input: Tensor) -> Tensor { run(input).0 }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) {
        let (y, norms) = run(input)
        return (y, Cache(output: y, norms: norms))
    }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        let cache = cache as! Cache
        let y = cache.output, d = y.shape.last!, rows = y.count / d
        var dx = gradOutput
        // dx = (dy − y·(y·dy)) / ‖x‖
        for r in 0..<rows {
            var dot: Float = 0
            for j in 0..<d { dot += y.storage[r * d + j] * gradOutput.storage[r * d + j] }
            for j in 0..<d { dx.storage[r * d + j] = (gradOutput.storage[r * d + j] - y.storage[r * d + j] * dot) / cache.norms[r] }
        }
        return dx
    }
}
