/// What a layer keeps from a forward pass for its backward pass. Each forward call returns its
/// own cache, so one layer can be applied to several inputs before any backward.
public protocol LayerCache: AnyObject {}

/// A differentiable function of one tensor.
///
/// `forward` computes the output and a cache; `backward` takes dL/doutput and that cache, adds
/// dL/dparameters into each `Parameter.gradient`, and returns dL/dinput (or nil when
/// `inputGradient` is false, which the first layer of a network uses to skip needless work).
/// `infer` is the forward pass without a cache (inference, the momentum encoder).
public protocol Layer: AnyObject {
    var parameters: [Parameter] { get }
    func forward(_ input: Tensor) -> (Tensor, LayerCache)
    func infer(_ input: Tensor) -> Tensor
    func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor?
}

/// A cache for layers that need nothing beyond the input or output tensor they saw.
final class TensorCache: LayerCache {
    let tensor: Tensor
    init(_ tensor: Tensor) { self.tensor = tensor }
}

/// Layers applied in order.
public final class Sequential: Layer {
    public let layers: [Layer]

    public init(_ layers: [Layer]) { self.layers = layers }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }

    final class Cache: LayerCache {
        var caches: [LayerCache] = []
    }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) {
        let cache = Cache()
        cache.caches.reserveCapacity(layers.count)
        var x = input
        for layer in layers {
            let (y, c) = layer.forward(x)
            cache.caches.append(c)
            x = y
        }
        return (x, cache)
    }

    public func infer(_ input: Tensor) -> Tensor {
        layers.reduce(input) { $1.infer($0) }
    }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        let caches = (cache as! Cache).caches
        var grad: Tensor? = gradOutput
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            guard let g = grad else { return nil }
            grad = layers[i].backward(g, cache: caches[i], inputGradient: i > 0 || inputGradient)
        }
        return grad
    }
}
