import Testing
import TemporalContrast

@Suite("Layer gradients against finite differences")
struct LayerGradientTests {
    @Test("Conv2d on BLAS and on oneDNN: 3×3 stride 1 and 2, 1×1, with bias (BLAS only), padding 0 and 1",
          arguments: [(3, 1, 1, false), (3, 2, 1, false), (1, 1, 0, true), (3, 2, 0, true), (1, 2, 0, false)], ConvolutionEngine.allCases)
    func conv(shape: (kernel: Int, stride: Int, padding: Int, bias: Bool), engine: ConvolutionEngine) {
        var check = Check(seed: 1)
        let conv = Conv2d(3, 4, kernel: shape.kernel, stride: shape.stride, padding: shape.padding, bias: shape.bias, engine: engine, name: "c", rng: &check.rng)
        check.layer(conv, input: check.tensor([2, 5, 6, 3]))
    }

    @Test("Conv2d forward equals a direct convolution (BLAS with a bias, oneDNN without)", arguments: ConvolutionEngine.allCases)
    func convForward(engine: ConvolutionEngine) {
        var check = Check(seed: 2)
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (1, 1, 0), (3, 2, 0)] {
            let conv = Conv2d(3, 5, kernel: k, stride: s, padding: p, bias: engine == .blas, engine: engine, name: "c", rng: &check.rng)
            conv.bias?.value = (0..<5).map { Float($0) * 0.1 }
            let x = check.tensor([2, 7, 6, 3])
            let y = conv.infer(x)
            let oh = (7 + 2 * p - k) / s + 1, ow = (6 + 2 * p - k) / s + 1
            #expect(y.shape == [2, oh, ow, 5])
            for n in 0..<2 { for oy in 0..<oh { for ox in 0..<ow { for o in 0..<5 {
                var sum = Double(conv.bias?.value[o] ?? 0)
                for ky in 0..<k { for kx in 0..<k { for c in 0..<3 {
                    let iy = oy * s - p + ky, ix = ox * s - p + kx
                    guard iy >= 0, iy < 7, ix >= 0, ix < 6 else { continue }
                    sum += Double(x.storage[((n * 7 + iy) * 6 + ix) * 3 + c]) * Double(conv.weight.value[((o * k + ky) * k + kx) * 3 + c])
                } } }
                #expect(abs(Double(y.storage[((n * oh + oy) * ow + ox) * 5 + o]) - sum) < 1e-4)
            } } } }
        }
    }

    @Test("Linear, ReLU, L2Normalize, LayerNorm")
    func vectorLayers() {
        var check = Check(seed: 3)
        check.layer(Linear(6, 5, name: "fc", rng: &check.rng), input: check.tensor([4, 6]))
        check.layer(ReLU(), input: check.awayFromZero([4, 7]))
        check.layer(L2Normalize(), input: check.tensor([4, 6]))
        let norm = LayerNorm(features: 6, name: "ln")
        norm.gamma.value = (0..<6).map { 1 + Float($0) * 0.1 }
        norm.beta.value = (0..<6).map { Float($0) * 0.05 }
        check.layer(norm, input: check.tensor([4, 6]))
    }

    @Test("GroupNorm on images and on vectors", arguments: [1, 2, 4])
    func groupNorm(groups: Int) {
        var check = Check(seed: 4)
        let norm = GroupNorm(groups: groups, channels: 4, name: "gn")
        norm.gamma.value = [0.5, 1.5, -1, 2]
        norm.beta.value = [0.1, -0.2, 0.3, 0]
        check.layer(norm, input: check.tensor([3, 4, 5, 4], scale: 2))
        check.layer(norm, input: check.tensor([3, 4]))
        // Fused with ReLU: the same as GroupNorm then ReLU, forward and backward.
        let fused = GroupNorm(groups: groups, channels: 4, relu: true, name: "gn")
        fused.gamma.value = norm.gamma.value
        fused.beta.value = norm.beta.value
        let x = check.tensor([3, 4, 5, 4], scale: 2)
        #expect(fused.infer(x) == ReLU().infer(norm.infer(x)))
        check.layer(fused, input: x, epsilon: 1e-3)
    }

    @Test("GroupNorm normalises each sample's group to zero mean and unit variance")
    func groupNormStatistics() {
        var check = Check(seed: 5)
        let norm = GroupNorm(groups: 2, channels: 4, name: "gn")
        let y = norm.infer(check.tensor([2, 3, 3, 4], scale: 5))
        for n in 0..<2 {
            for g in 0..<2 {
                var values: [Double] = []
                for p in 0..<9 { for j in (g * 2)..<(g * 2 + 2) { values.append(Double(y.storage[(n * 9 + p) * 4 + j])) } }
                let mean = values.reduce(0, +) / Double(values.count)
                let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
                #expect(abs(mean) < 1e-5 && abs(variance - 1) < 1e-3)
            }
        }
    }

    @Test("pooling: max, average (padded), global average")
    func pooling() {
        var check = Check(seed: 6)
        // Distinct values spaced far beyond ε so the max never switches under perturbation.
        let values = (0..<(2 * 4 * 4 * 2)).map { Float($0) * 0.1 }.shuffled(using: &check.rng)
        check.layer(Pool2d(.max, kernel: 2), input: Tensor(shape: [2, 4, 4, 2], storage: values), epsilon: 1e-3)
        check.layer(Pool2d(.average, kernel: 3, stride: 2, padding: 1), input: check.tensor([2, 5, 5, 2]))
        check.layer(GlobalAveragePool(), input: check.tensor([2, 3, 4, 5]))
        let maxed = Pool2d(.max, kernel: 2).infer(Tensor(shape: [1, 2, 2, 1], storage: [1, 5, 3, 2]))
        #expect(maxed.storage == [5])
    }

    @Test("residual blocks: identity and projection shortcuts")
    func residual() {
        var check = Check(seed: 7)
        check.layer(ResidualBlock(4, 4, stride: 1, groups: 2, name: "b", rng: &check.rng), input: check.tensor([2, 4, 4, 4]), epsilon: 1e-3, directionalEpsilon: 1e-4, tolerance: 2e-2)
        check.layer(ResidualBlock(4, 8, stride: 2, groups: 2, name: "b", rng: &check.rng), input: check.tensor([2, 4, 4, 4]), epsilon: 1e-3, directionalEpsilon: 1e-4, tolerance: 2e-2)
    }

    @Test("a whole encoder: conv/GroupNorm/ReLU stack with pooling and head")
    func encoder() {
        var check = Check(seed: 8)
        let backbone = BackboneArchitecture.plainStack(channels: [3, 4, 8], groups: 2, prefix: "b", rng: &check.rng)
        let head = ProjectionHead(hidden: 8, output: 6).make(input: 8, rng: &check.rng)
        check.layer(Sequential([backbone, head]), input: check.tensor([3, 8, 8, 3]), epsilon: 1e-3, directionalEpsilon: 1e-4, tolerance: 2e-2)
    }

    @Test("applying one encoder to two inputs accumulates both gradients (siamese use)")
    func siameseAccumulation() {
        var check = Check(seed: 9)
        let net = Sequential([
            BackboneArchitecture.plainStack(channels: [3, 4], groups: 2, prefix: "b", rng: &check.rng),
            Linear(4, 3, name: "fc", rng: &check.rng),
        ])
        let a = check.tensor([2, 6, 6, 3]), b = check.tensor([2, 6, 6, 3])
        let ra = check.tensor([2, 3]), rb = check.tensor([2, 3])
        func gradients(_ inputs: [(Tensor, Tensor)]) -> [[Float]] {
            for p in net.parameters { p.zeroGradient() }
            let passes = inputs.map { (net.forward($0.0), $0.1) }
            for ((_, cache), r) in passes.reversed() { _ = net.backward(r, cache: cache, inputGradient: false) }
            return net.parameters.map(\.gradient)
        }
        let both = gradients([(a, ra), (b, rb)])
        let onlyA = gradients([(a, ra)]), onlyB = gradients([(b, rb)])
        for (g, (x, y)) in zip(both, zip(onlyA, onlyB)) {
            for i in g.indices { #expect(abs(g[i] - (x[i] + y[i])) <= 1e-5 * max(1, abs(g[i]))) }
        }
    }
}
