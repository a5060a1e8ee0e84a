import Testing
import TemporalContrast

@Suite("Encoders chosen by name")
struct ArchitectureTests {
    @Test("every architecture builds by name, has unique parameter names, and maps inputs to 256 features",
          arguments: BackboneArchitecture.allCases)
    func shapes(architecture: BackboneArchitecture) {
        #expect(BackboneArchitecture(rawValue: architecture.rawValue) == architecture)
        var rng = RandomSource(seed: 1)
        let network = EmbeddingNetwork(architecture: architecture, rng: &rng)
        let names = network.parameters.map(\.name)
        #expect(Set(names).count == names.count)
        let input = architecture == .audio
            ? Tensor(shape: [2, 64, 96, 1], storage: (0..<(2 * 64 * 96)).map { _ in rng.normal() })
            : Tensor(shape: [2, 64, 64, 3], storage: (0..<(2 * 64 * 64 * 3)).map { _ in rng.normal() })
        #expect(network.features(input).shape == [2, 256])
        let (z, record) = network.forward(input)
        #expect(z.shape == [2, 128])
        for r in 0..<2 {
            let norm = (0..<128).reduce(Float(0)) { $0 + z.storage[r * 128 + $1] * z.storage[r * 128 + $1] }
            #expect(abs(norm - 1) < 1e-4)
        }
        network.backward(Tensor(shape: [2, 128], storage: (0..<256).map { _ in rng.normal() }), record: record)
        #expect(network.parameters.allSatisfy { $0.gradient.contains { $0 != 0 } })
    }

    @Test("the reference workload's FLOP count matches the PyTorch script's (121.4 MFLOP per pair)")
    func referenceFlops() {
        #expect(abs(ReferenceWorkload.flopsPerPair / 1e6 - 121.439) < 0.01)
    }
}
