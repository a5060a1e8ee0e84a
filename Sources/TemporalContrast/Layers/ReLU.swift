/// max(0, x), element-wise, any shape.
public final class ReLU: Layer {
    public init() {}
    public var parameters: [Parameter] { [] }

    public func infer(_ input: Tensor) -> Tensor {
        var y = input
        y.storage.withUnsafeMutableBufferPointer { b in
            for i in b.indices { b[i] = max(b[i], 0) }
        }
        return y
    }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) {
        let y = infer(input)
        return (y, TensorCache(y))
    }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        guard inputGradient else { return nil }
        let y = (cache as! TensorCache).tensor
        var g = gradOutput
        g.storage.withUnsafeMutableBufferPointer { gb in
            y.storage.withUnsafeBufferPointer { yb in
                for i in gb.indices where yb[i] <= 0 { gb[i] = 0 }
            }
        }
        return g
    }
}
