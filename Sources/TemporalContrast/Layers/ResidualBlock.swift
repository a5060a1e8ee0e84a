/// A ResNet basic block on NHWC tensors: relu(main(x) + shortcut(x)), where main is
/// conv3×3(stride) → GroupNorm → ReLU → conv3×3 → GroupNorm and shortcut is the identity, or a
/// 1×1 conv(stride) → GroupNorm when the shape changes.
public final class ResidualBlock: Layer {
    let main: Sequential
    let shortcut: Sequential?
    let relu = ReLU()

    public init(_ inChannels: Int, _ outChannels: Int, stride: Int, groups: Int, name: String, rng: inout RandomSource) {
        main = Sequential([
            Conv2d(inChannels, outChannels, kernel: 3, stride: stride, padding: 1, name: "\(name).conv1", rng: &rng),
            GroupNorm(groups: groups, channels: outChannels, relu: true, name: "\(name).gn1"),
            Conv2d(outChannels, outChannels, kernel: 3, stride: 1, padding: 1, name: "\(name).conv2", rng: &rng),
            GroupNorm(groups: groups, channels: outChannels, name: "\(name).gn2"),
        ])
        shortcut = stride != 1 || inChannels != outChannels
            ? Sequential([
                Conv2d(inChannels, outChannels, kernel: 1, stride: stride, name: "\(name).shortcut.conv", rng: &rng),
                GroupNorm(groups: groups, channels: outChannels, name: "\(name).shortcut.gn"),
            ])
            : nil
    }

    public var parameters: [Parameter] { main.parameters + (shortcut?.parameters ?? []) }

    final class Cache: LayerCache {
        let main: LayerCache, shortcut: LayerCache?, relu: LayerCache
        init(main: LayerCache, shortcut: LayerCache?, relu: LayerCache) {
            self.main = main
            self.shortcut = shortcut
            self.relu = relu
        }
    }

    private func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        var y = a
        y.storage.withUnsafeMutableBufferPointer { yb in
            b.storage.withUnsafeBufferPointer { bb in Vector.axpy(1, bb.baseAddress!, yb.baseAddress!, count: yb.count) }
        }
        return y
    }

    public func infer(_ input: Tensor) -> Tensor {
        relu.infer(add(main.infer(input), shortcut?.infer(input) ?? input))
    }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) {
        let (m, mc) = main.forward(input)
        let (s, sc): (Tensor, LayerCache?) = shortcut.map { let r = $0.forward(input); return (r.0, r.1) } ?? (input, nil)
        let (y, rc) = relu.forward(add(m, s))
        return (y, Cache(main: mc, shortcut: sc, relu: rc))
    }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        let cache = cache as! Cache
        let g = relu.backward(gradOutput, cache: cache.relu, inputGradient: true)!
        let dMain = main.backward(g, cache: cache.main, inputGradient: inputGradient)
        let dShort = shortcut.map { $0.backward(g, cache: cache.shortcut!, inputGradient: inputGradient) } ?? (inputGradient ? g : nil)
        guard inputGradient, let dMain, let dShort else { return nil }
        return add(dMain, dShort)
    }
}
