import Testing
@testable import TemporalContrast

/// oneDNN's convolutions compute what the im2col + sgemm path computes, on every shape the
/// encoders use, whole or split across workers.
@Suite("Conv2d on oneDNN against Conv2d on BLAS")
struct OneDNNConvolutionTests {
    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    @Test("forward, input gradient and weight gradient agree within 1e-4 (relative to the largest value), 1 and 2 slices",
          arguments: [
              (3, 8, 3, 2, 1, 9), (16, 32, 3, 2, 1, 8), (16, 16, 3, 1, 1, 7), (16, 32, 1, 2, 0, 8), (8, 8, 1, 1, 0, 6), (8, 12, 3, 2, 0, 9),
          ], [1, 2])
    func agrees(shape: (cin: Int, cout: Int, kernel: Int, stride: Int, padding: Int, size: Int), slices: Int) throws {
        var rng = RandomSource(seed: 7)
        let blas = Conv2d(shape.cin, shape.cout, kernel: shape.kernel, stride: shape.stride, padding: shape.padding, engine: .blas, name: "b", rng: &rng)
        var rng2 = RandomSource(seed: 7)
        let dnnl = Conv2d(shape.cin, shape.cout, kernel: shape.kernel, stride: shape.stride, padding: shape.padding, engine: .onednn, name: "d", rng: &rng2)
        dnnl.workersOverride = slices
        #expect(blas.weight.value == dnnl.weight.value)
        let inputShape = [5, shape.size, shape.size + 1, shape.cin]
        let names = try #require(dnnl.oneDNNImplementations(for: inputShape), "oneDNN declined \(inputShape)")
        #expect(names.allSatisfy { !$0.hasPrefix("ref") })
        let x = Tensor(shape: inputShape, storage: (0..<inputShape.reduce(1, *)).map { _ in rng.normal() })
        let (yb, cb) = blas.forward(x)
        let (yd, cd) = dnnl.forward(x)
        #expect(yb.shape == yd.shape)
        let scale = max(1, yb.storage.map(abs).max() ?? 1)
        #expect(Self.maxDifference(yb.storage, yd.storage) <= 1e-4 * scale)
        #expect(Self.maxDifference(dnnl.infer(x).storage, yd.storage) == 0)
        let dy = Tensor(shape: yb.shape, storage: (0..<yb.count).map { _ in rng.normal() })
        blas.weight.gradient = [Float](repeating: 0.5, count: blas.weight.value.count)
        dnnl.weight.gradient = blas.weight.gradient
        let dxb = try #require(blas.backward(dy, cache: cb, inputGradient: true))
        let dxd = try #require(dnnl.backward(dy, cache: cd, inputGradient: true))
        #expect(dxb.shape == dxd.shape)
        #expect(Self.maxDifference(dxb.storage, dxd.storage) <= 1e-4 * max(1, dxb.storage.map(abs).max() ?? 1))
        // The weight gradient accumulates (the 0.5 already there) like the BLAS path's.
        #expect(Self.maxDifference(blas.weight.gradient, dnnl.weight.gradient) <= 1e-4 * max(1, blas.weight.gradient.map(abs).max() ?? 1))
        #expect(blas.weight.gradient.contains { abs($0 - 0.5) > 1e-3 })
        // Without an input gradient the weight gradient still accumulates, by the same amount.
        let before = dnnl.weight.gradient
        #expect(dnnl.backward(dy, cache: cd, inputGradient: false) == nil)
        let added = zip(dnnl.weight.gradient, before).map { $0 - $1 }, expected = blas.weight.gradient.map { $0 - 0.5 }
        #expect(Self.maxDifference(added, expected) <= 1e-4 * max(1, expected.map(abs).max() ?? 1))
    }

    @Test("the reference encoder's layers run on oneDNN's JIT kernels, not its reference code")
    func referenceShapesUseJIT() throws {
        var rng = RandomSource(seed: 1)
        for (cin, cout, size) in [(3, 32, 64), (32, 64, 32), (64, 128, 16), (128, 256, 8)] {
            let conv = Conv2d(cin, cout, kernel: 3, stride: 2, padding: 1, engine: .onednn, name: "c", rng: &rng)
            let names = try #require(conv.oneDNNImplementations(for: [32, size, size, cin]))
            #expect(names.count == 3 && names.allSatisfy { !$0.hasPrefix("ref") }, "\(names)")
        }
    }

    @Test("a slice runs as power-of-two chunks, largest first, covering it exactly")
    func chunking() {
        #expect(Conv2d.chunks(of: 0..<27) == [0..<16, 16..<24, 24..<26, 26..<27])
        #expect(Conv2d.chunks(of: 5..<5).isEmpty)
        for n in 1...300 {
            let chunks = Conv2d.chunks(of: 7..<(7 + n))
            #expect(chunks.first?.lowerBound == 7 && chunks.last?.upperBound == 7 + n)
            #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && $0.count >= $1.count })
            #expect(chunks.allSatisfy { $0.count <= Conv2d.largestChunk && $0.count & ($0.count - 1) == 0 })
        }
    }

    @Test("every batch size from 1 to 200 needs at most 7 plans per worker")
    func plansPerBatchSizeBounded() {
        var rng = RandomSource(seed: 2)
        let conv = Conv2d(4, 8, kernel: 3, stride: 2, padding: 1, engine: .onednn, name: "c", rng: &rng)
        conv.workersOverride = 2
        for n in 1...200 { _ = conv.infer(Tensor(zeros: [n, 6, 6, 4])) }
        #expect(conv.oneDNNPlanCount <= 14)
        #expect(conv.oneDNNPlanCount >= 12)
    }

    @Test("plans for varying input sizes stay bounded, and a backward pass runs the plans of its forward pass even after they left the cache")
    func plansBounded() throws {
        var rng = RandomSource(seed: 3)
        let conv = Conv2d(4, 8, kernel: 3, stride: 2, padding: 1, engine: .onednn, name: "c", rng: &rng)
        conv.workersOverride = 1
        let x = Tensor(shape: [3, 6, 6, 4], storage: (0..<(3 * 6 * 6 * 4)).map { _ in rng.normal() })
        let (y, cache) = conv.forward(x)
        for width in 6...45 { _ = conv.infer(Tensor(zeros: [1, 6, width, 4])) }
        #expect(conv.oneDNNPlanCount <= 32)
        #expect(conv.oneDNNPlanCount >= 30)
        let dy = Tensor(shape: y.shape, storage: (0..<y.count).map { _ in rng.normal() })
        let dx = try #require(conv.backward(dy, cache: cache, inputGradient: true))
        #expect(dx.shape == x.shape)
        #expect(dx.storage.contains { $0 != 0 })
    }

    @Test("a layer with a bias, or the blas engine, stays on BLAS")
    func blasWhereAsked() {
        var rng = RandomSource(seed: 1)
        #expect(Conv2d(3, 8, kernel: 3, stride: 1, padding: 1, bias: true, engine: .onednn, name: "c", rng: &rng).oneDNNImplementations(for: [2, 8, 8, 3]) == nil)
        #expect(Conv2d(3, 8, kernel: 3, stride: 1, padding: 1, engine: .blas, name: "c", rng: &rng).oneDNNImplementations(for: [2, 8, 8, 3]) == nil)
    }
}
