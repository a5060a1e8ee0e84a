import Foundation
import Testing
@testable import TemporalContrast

/// The tiny reference network against values PyTorch computed independently
/// (benchmarks/golden_reference.py → Fixtures/golden_moco.safetensors, float64 autograd).
@Suite("Golden values from PyTorch")
struct GoldenTests {
    static func fixture() throws -> SafeTensors {
        let url = try #require(Bundle.module.url(forResource: "golden_moco", withExtension: "safetensors", subdirectory: "Fixtures"))
        return try SafeTensors(contentsOf: url)
    }

    /// PyTorch's [out, in, kh, kw] → our [out, kh, kw, in].
    static func convWeight(_ e: SafeTensors.Entry) -> [Float] {
        let (o, i, kh, kw) = (e.shape[0], e.shape[1], e.shape[2], e.shape[3])
        var out = [Float](repeating: 0, count: e.values.count)
        for a in 0..<o { for b in 0..<i { for y in 0..<kh { for x in 0..<kw {
            out[((a * kh + y) * kw + x) * i + b] = e.values[((a * i + b) * kh + y) * kw + x]
        } } } }
        return out
    }

    /// NCHW images → NHWC.
    static func nhwc(_ e: SafeTensors.Entry) -> Tensor {
        let (n, c, h, w) = (e.shape[0], e.shape[1], e.shape[2], e.shape[3])
        var out = [Float](repeating: 0, count: e.values.count)
        for a in 0..<n { for b in 0..<c { for y in 0..<h { for x in 0..<w {
            out[((a * h + y) * w + x) * c + b] = e.values[((a * c + b) * h + y) * w + x]
        } } } }
        return Tensor(shape: [n, h, w, c], storage: out)
    }

    /// The tiny reference network with the fixture's weights, and its parameters by fixture name.
    static func network(_ f: SafeTensors) throws -> (Sequential, [String: Parameter]) {
        var rng = RandomSource(seed: 0)
        let backbone = BackboneArchitecture.plainStack(channels: [3, 8, 8, 16, 16], groups: 4, prefix: "backbone", rng: &rng)
        let head = ProjectionHead(hidden: 16, output: 8).make(input: 16, prefix: "head", rng: &rng)
        let net = Sequential([backbone, head])
        var byName: [String: Parameter] = [:]
        for p in net.parameters {
            let name = p.name
                .replacingOccurrences(of: "backbone.", with: "").replacingOccurrences(of: "head.fc", with: "proj")
            let entry = try #require(f[name], "fixture lacks \(name)")
            p.value = name.hasPrefix("conv") ? convWeight(entry) : entry.values
            byName[name] = p
        }
        #expect(byName.count == 16)
        return (net, byName)
    }

    static func expectClose(_ got: [Float], _ expected: [Float], _ tolerance: Float, _ what: String) {
        #expect(got.count == expected.count, "\(what): \(got.count) vs \(expected.count) values")
        let worst = zip(got, expected).map { abs($0 - $1) / max(1e-2, abs($1)) }.max() ?? 0
        #expect(worst < tolerance, "\(what): worst relative error \(worst)")
    }

    @Test("encoder output, MoCo loss and every parameter gradient match PyTorch")
    func mocoGolden() throws {
        let f = try Self.fixture()
        let (net, params) = try Self.network(f)
        let anchors = Self.nhwc(try #require(f["anchors"])), positives = Self.nhwc(try #require(f["positives"]))
        let backbone = net.layers[0]
        Self.expectClose(backbone.infer(anchors).storage, try #require(f["features_anchor"]).values, 1e-4, "features")
        let (q, cache) = net.forward(anchors)
        Self.expectClose(q.storage, try #require(f["q"]).values, 1e-4, "q")
        let k = net.infer(positives)
        Self.expectClose(k.storage, try #require(f["k"]).values, 1e-4, "k")
        let queueEntry = try #require(f["queue"])
        let queue = KeyQueue(
            capacity: 16, dimension: 8, keys: queueEntry.values, origins: Array(repeating: SampleOrigin(source: -1, time: 0), count: 16),
            writeIndex: 0, count: 16)
        let result = MoCoLoss(temperature: 0.1)(query: q, key: k, queue: queue)
        let expectedLoss = try #require(f["moco_loss"]).values[0]
        #expect(abs(result.loss - expectedLoss) < 1e-4 * max(1, expectedLoss), "loss \(result.loss) vs \(expectedLoss)")
        for p in net.parameters { p.zeroGradient() }
        _ = net.backward(result.gradients[0], cache: cache, inputGradient: false)
        for (name, p) in params {
            let expected = try #require(f["grad.\(name)"])
            let values = name.hasPrefix("conv") ? Self.convWeight(expected) : expected.values
            // Gradients are small differences of float32 sums: compare against the tensor's scale.
            let scale = max(values.map(abs).max() ?? 0, 1e-6)
            let worst = zip(p.gradient, values).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 2e-3 * scale, "grad \(name): worst abs error \(worst), tensor scale \(scale)")
        }
    }

    @Test("NT-Xent loss and its conv1 gradient through both branches match PyTorch")
    func ntxentGolden() throws {
        let f = try Self.fixture()
        let (net, params) = try Self.network(f)
        let anchors = Self.nhwc(try #require(f["anchors"])), positives = Self.nhwc(try #require(f["positives"]))
        let (za, ca) = net.forward(anchors)
        let (zb, cb) = net.forward(positives)
        let result = InfoNCELoss(temperature: 0.1)(za, zb)
        let expectedLoss = try #require(f["ntxent_loss"]).values[0]
        #expect(abs(result.loss - expectedLoss) < 1e-4 * max(1, expectedLoss))
        for p in net.parameters { p.zeroGradient() }
        _ = net.backward(result.gradients[0], cache: ca, inputGradient: false)
        _ = net.backward(result.gradients[1], cache: cb, inputGradient: false)
        let expected = Self.convWeight(try #require(f["ntxent_grad.conv1.weight"]))
        let scale = expected.map(abs).max()!
        let worst = zip(params["conv1.weight"]!.gradient, expected).map { abs($0 - $1) }.max()!
        #expect(worst <= 2e-3 * scale, "conv1 grad worst abs error \(worst), scale \(scale)")
    }

    static func methodsFixture() throws -> SafeTensors {
        let url = try #require(Bundle.module.url(forResource: "golden_methods", withExtension: "safetensors", subdirectory: "Fixtures"))
        return try SafeTensors(contentsOf: url)
    }

    static func tensor(_ f: SafeTensors, _ name: String) throws -> Tensor {
        let e = try #require(f[name], "fixture lacks \(name)")
        return Tensor(shape: e.shape, storage: e.values)
    }

    /// A loss and its two input gradients against the fixture's (benchmarks/golden_methods.py).
    static func expectMatches(_ r: ObjectiveResult, _ f: SafeTensors, _ method: String, grads: (String, String)) throws {
        let expected = try #require(f["\(method)_loss"]).values[0]
        #expect(abs(r.loss - expected) < 1e-4 * max(1, abs(expected)), "\(method) loss \(r.loss) vs \(expected)")
        for (i, name) in [grads.0, grads.1].enumerated() {
            let g = try #require(f["\(method)_grad_\(name)"]).values
            let scale = max(g.map(abs).max() ?? 0, 1e-6)
            let worst = zip(r.gradients[i].storage, g).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst <= 1e-4 * scale, "\(method) grad \(name): worst abs error \(worst), scale \(scale)")
        }
    }

    @Test("VICReg, Barlow Twins, the predictor methods' −cos and PIRL: loss and input gradients match PyTorch autograd")
    func methodLossesGolden() throws {
        let f = try Self.methodsFixture()
        let a = try Self.tensor(f, "a"), b = try Self.tensor(f, "b")
        try Self.expectMatches(VICRegLoss()(a, b), f, "vicreg", grads: ("a", "b"))
        try Self.expectMatches(BarlowTwinsLoss()(a, b), f, "barlow", grads: ("a", "b"))
        let (cosLoss, cosGrad) = negativeCosine(a, b)
        let simsiam = ObjectiveResult(loss: cosLoss, gradients: [cosGrad, cosGrad], health: ContrastiveHealth())
        try Self.expectMatches(simsiam, f, "simsiam", grads: ("p", "p"))
        let bank = try Self.tensor(f, "bank")
        let memory = MemoryBank(instances: bank.batch, dimension: bank.itemSize, momentum: 0.5, entries: bank.storage)
        let candidates = try #require(f["candidates"]).values.map { Int($0) }
        let pirl = MemoryBankNCELoss(temperature: 0.1, negatives: 5, lambda: 0.5)
            .loss(transformed: try Self.tensor(f, "g"), original: try Self.tensor(f, "f"), candidates: candidates, bank: memory)
        // The loss returns [d/dtransformed, d/doriginal]: g first.
        try Self.expectMatches(pirl, f, "pirl", grads: ("g", "f"))
    }

    /// DINO's or SwAV's two-view loss on the fixture's unit rows f, g and prototypes w, with the
    /// targets of view a and b given; the gradients of f, g and w as the methods compute them.
    static func prototypeLoss(_ f: SafeTensors, temperature: Float, targets: (Tensor, Tensor) -> ([Float], [Float])) throws
        -> (loss: Float, gf: Tensor, gg: Tensor, gw: [Float]) {
        let za = try tensor(f, "f"), zb = try tensor(f, "g"), w = try tensor(f, "w")
        var rng = RandomSource(seed: 0)
        let prototypes = Prototypes(count: w.batch, dimension: w.itemSize, name: "w", rng: &rng)
        prototypes.weight.value = w.storage
        let (sa, ca) = prototypes.scores(za), (sb, cb) = prototypes.scores(zb)
        let (ta, tb) = targets(sa, sb)
        let (lb, gb) = softCrossEntropy(sb, temperature: temperature, targets: ta)
        let (la, ga) = softCrossEntropy(sa, temperature: temperature, targets: tb)
        let gf = prototypes.backward(ga, ca, scale: 0.5).scaled(by: 0.5), gg = prototypes.backward(gb, cb, scale: 0.5).scaled(by: 0.5)
        return (0.5 * (la + lb), gf, gg, prototypes.weight.gradient)
    }

    @Test("DINO and SwAV (with its Sinkhorn-Knopp codes): loss and the gradients of both views and the prototypes match PyTorch autograd")
    func prototypeMethodsGolden() throws {
        let f = try Self.methodsFixture()
        let centre = try #require(f["centre"]).values
        let ta = try Self.tensor(f, "ta"), tb = try Self.tensor(f, "tb")
        let dino = try Self.prototypeLoss(f, temperature: 0.1) { _, _ in
            (softmaxRows(ta, temperature: 0.04, shift: centre), softmaxRows(tb, temperature: 0.04, shift: centre))
        }
        var codes: [Float] = []
        let swav = try Self.prototypeLoss(f, temperature: 0.1) { sa, sb in
            codes = SwAV.codes(sa, rows: sa.batch, epsilon: 0.05)
            return (codes, SwAV.codes(sb, rows: sb.batch, epsilon: 0.05))
        }
        Self.expectClose(codes, try #require(f["swav_codes_a"]).values, 1e-4, "swav codes")
        for (name, r) in [("dino", dino), ("swav", swav)] {
            let result = ObjectiveResult(loss: r.loss, gradients: [r.gf, r.gg], health: ContrastiveHealth())
            try Self.expectMatches(result, f, name, grads: ("f", "g"))
            let expected = try #require(f["\(name)_grad_w"]).values
            let scale = max(expected.map(abs).max() ?? 0, 1e-6)
            let worst = zip(r.gw, expected).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst <= 1e-4 * scale, "\(name) grad w: worst abs error \(worst), scale \(scale)")
        }
    }

    @Test("the batch standardisation and normalisation before DINO's and SwAV's prototypes, and its gradient, match PyTorch autograd")
    func standardisedUnitGolden() throws {
        let f = try Self.methodsFixture()
        let u = StandardisedUnit(try Self.tensor(f, "a"))
        Self.expectClose(u.unit.storage, try #require(f["standardised_unit"]).values, 1e-4, "unit")
        Self.expectClose(u.backward(try Self.tensor(f, "r")).storage, try #require(f["standardised_grad_a"]).values, 1e-3, "gradient")
    }

    @Test("safetensors round-trips, and damaged files are rejected")
    func safetensorsRoundTrip() throws {
        var file = SafeTensors()
        file.set("a", shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        file.set("b", shape: [1], values: [-0.5])
        file.metadata = ["step": "7"]
        let data = file.serialized()
        #expect(data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } % 8 == 0)
        let back = try SafeTensors(data: data)
        #expect(back == file)
        #expect(throws: SafeTensors.FormatError.self) { try SafeTensors(data: data.prefix(data.count - 3)) }
        #expect(throws: SafeTensors.FormatError.self) { try SafeTensors(data: Data([1, 0, 0])) }
        var bad = data
        bad[8] = UInt8(ascii: "x")
        #expect(throws: SafeTensors.FormatError.self) { try SafeTensors(data: bad) }
    }
}
