/// The encoders the config can name. Inputs are NHWC: video frames `[n, h, w, 3]` with RGB in
/// roughly [-1, 1] (see the exporter's pixel normalisation), log-mel patches `[n, mels, frames, 1]`.
public enum BackboneArchitecture: String, Sendable, CaseIterable, Codable {
    /// The reference video encoder: 4 × [conv3×3 s2 p1 (no bias) → GroupNorm(8) → ReLU] with
    /// channels 3→32→64→128→256, then global average pooling: 256 features.
    case reference
    /// A small ResNet for users with more compute: stem conv3×3 s2 (3→32) → GN → ReLU, then basic
    /// blocks 32→64 (s2), 64→64, 64→128 (s2), 128→128, 128→256 (s2), global average pooling: 256.
    case resnetSmall = "resnet-small"
    /// The audio encoder over log-mel spectrograms (2-D convolutions over mel × time): the
    /// reference structure with one input channel: 256 features.
    case audio

    public var inputChannels: Int { self == .audio ? 1 : 3 }
    public var featureDimension: Int { 256 }

    /// Builds the backbone with weights drawn from `rng`; parameter names start with `prefix`.
    public func make(prefix: String = "backbone", rng: inout RandomSource) -> Sequential {
        switch self {
        case .reference, .audio:
            return Self.plainStack(channels: [inputChannels, 32, 64, 128, 256], groups: 8, prefix: prefix, rng: &rng)
        case .resnetSmall:
            let stem: [Layer] = [
                Conv2d(3, 32, kernel: 3, stride: 2, padding: 1, name: "\(prefix).stem.conv", rng: &rng),
                GroupNorm(groups: 8, channels: 32, relu: true, name: "\(prefix).stem.gn"),
            ]
            let plan = [(32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2)]
            var blocks: [Layer] = []
            for (i, (cin, cout, stride)) in plan.enumerated() {
                blocks.append(ResidualBlock(cin, cout, stride: stride, groups: 8, name: "\(prefix).block\(i + 1)", rng: &rng))
            }
            return Sequential(stem + blocks + [GlobalAveragePool()])
        }
    }

    /// [conv3×3 s2 p1 → GroupNorm → ReLU] per channel step (GroupNorm and ReLU fused in one
    /// layer), then global average pooling.
    public static func plainStack(channels: [Int], groups: Int, prefix: String, rng: inout RandomSource) -> Sequential {
        var layers: [Layer] = []
        for i in 1..<channels.count {
            layers.append(Conv2d(channels[i - 1], channels[i], kernel: 3, stride: 2, padding: 1, name: "\(prefix).conv\(i)", rng: &rng))
            layers.append(GroupNorm(groups: min(groups, channels[i]), channels: channels[i], relu: true, name: "\(prefix).gn\(i)"))
        }
        layers.append(GlobalAveragePool())
        return Sequential(layers)
    }
}

/// The two-layer MLP head used in training and dropped at export: Linear(in→hidden) → ReLU →
/// Linear(hidden→out), followed by L2 normalisation for contrastive objectives (VICReg uses the raw
/// output).
public struct ProjectionHead: Sendable, Codable, Equatable {
    public var hidden: Int = 256
    public var output: Int = 128
    public var normalize: Bool = true

    public init(hidden: Int = 256, output: Int = 128, normalize: Bool = true) {
        self.hidden = hidden
        self.output = output
        self.normalize = normalize
    }

    public func make(input: Int, prefix: String = "head", rng: inout RandomSource) -> Sequential {
        var layers: [Layer] = [
            Linear(input, hidden, name: "\(prefix).fc1", rng: &rng), ReLU(), Linear(hidden, output, name: "\(prefix).fc2", rng: &rng),
        ]
        if normalize { layers.append(L2Normalize()) }
        return Sequential(layers)
    }
}
