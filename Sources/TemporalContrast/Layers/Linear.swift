/// y = x·Wᵀ + b on `[batch, in]` → `[batch, out]`.
///
/// `weight` is `[out, in]` row-major (PyTorch's layout), `bias` is `[out]`. Initialised as PyTorch
/// does: uniform in ±1/√in for both.
public final class Linear: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let inFeatures: Int
    public let outFeatures: Int

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, name: String, rng: inout RandomSource) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter(
            name: "\(name).weight", shape: [outFeatures, inFeatures],
            value: (0..<(inFeatures * outFeatures)).map { _ in rng.uniform(-bound, bound) }, decays: true)
        self.bias = bias
            ? Parameter(name: "\(name).bias", shape: [outFeatures], value: (0..<outFeatures).map { _ in rng.uniform(-bound, bound) }, decays: false)
            : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    public func infer(_ input: Tensor) -> Tensor {
        let n = input.batch
        precondition(input.itemSize == inFeatures, "Linear \(weight.name): input has \(input.itemSize) features, expected \(inFeatures)")
        var y = Tensor(zeros: [n, outFeatures])
        if let bias {
            y.storage.withUnsafeMutableBufferPointer { yb in
                for r in 0..<n { for j in 0..<outFeatures { yb[r * outFeatures + j] = bias.value[j] } }
            }
        }
        GEMM.multiply(input.storage, weight.value, into: &y.storage, m: n, n: outFeatures, k: inFeatures, transposeB: true, beta: bias == nil ? 0 : 1)
        return y
    }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) { (infer(input), TensorCache(input)) }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        let x = (cache as! TensorCache).tensor
        let n = x.batch
        // dW[out, in] += dYᵀ·X ; db += Σ_rows dY ; dX = dY·W
        GEMM.multiply(gradOutput.storage, x.storage, into: &weight.gradient, m: outFeatures, n: inFeatures, k: n, transposeA: true, beta: 1)
        if let bias {
            gradOutput.storage.withUnsafeBufferPointer { g in
                bias.gradient.withUnsafeMutableBufferPointer { db in
                    for r in 0..<n { for j in 0..<outFeatures { db[j] += g[r * outFeatures + j] } }
                }
            }
        }
        guard inputGradient else { return nil }
        var dx = Tensor(shape: x.shape, storage: [Float](repeating: 0, count: x.count))
        GEMM.multiply(gradOutput.storage, weight.value, into: &dx.storage, m: n, n: inFeatures, k: outFeatures)
        return dx
    }
}
