/// A trained backbone taken out of a checkpoint (no projection head), in the form downstream users
/// consume: features for NCHW float32 inputs, PyTorch-layout tensors, and an ONNX model.
///
/// Video input: `[n, 3, h, w]` RGB normalised per channel (see `ImageAugmentation.mean`/`std`);
/// audio input: `[n, 1, bands, frames]` log-mel. Output: `[n, featureDimension]` backbone features.
public final class ExportedEncoder {
    public enum Modality: String, Sendable, CaseIterable, Codable {
        case video, audio
    }

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    public let modality: Modality
    public let architecture: BackboneArchitecture
    /// `[channels, height, width]` of one input.
    public let inputShape: [Int]
    let backbone: Sequential

    /// Tensor names start with "video.backbone." or "audio.backbone.", as in checkpoints.
    public var namePrefix: String { "\(modality.rawValue).backbone" }
    public var featureDimension: Int { architecture.featureDimension }
    public var inputName: String { modality == .video ? "frames" : "log_mel" }
    public static let outputName = "features"

    /// Loads the `modality` backbone's weights from a checkpoint written by `Learner.state()`.
    public init(modality: Modality, architecture: BackboneArchitecture, height: Int, width: Int, checkpoint: SafeTensors) throws(LoadError) {
        self.modality = modality
        self.architecture = architecture
        inputShape = [architecture.inputChannels, height, width]
        var rng = RandomSource(seed: 0)
        backbone = architecture.make(prefix: "\(modality.rawValue).backbone", rng: &rng)
        for p in backbone.parameters {
            guard let e = checkpoint[p.name], e.dtype == .f32 else {
                throw LoadError(description: "checkpoint has no \(modality.rawValue) encoder tensor \(p.name) (architecture \(architecture.rawValue))")
            }
            guard e.shape == p.shape else {
                throw LoadError(description: "checkpoint tensor \(p.name) has shape \(e.shape), the \(architecture.rawValue) encoder needs \(p.shape)")
            }
            p.value = e.values
        }
    }

    /// Backbone features of a batch of NCHW inputs (`n · inputShape` values), `[n, featureDimension]`.
    public func features(nchw input: [Float], count n: Int) -> [Float] {
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        precondition(input.count == n * c * h * w, "ExportedEncoder: \(input.count) values for \(n)×\(inputShape)")
        guard n > 0 else { return [] }
        var nhwc = [Float](repeating: 0, count: input.count)
        for b in 0..<n {
            for ch in 0..<c {
                for y in 0..<h {
                    for x in 0..<w { nhwc[((b * h + y) * w + x) * c + ch] = input[((b * c + ch) * h + y) * w + x] }
                }
            }
        }
        return backbone.infer(Tensor(shape: [n, h, w, c], storage: nhwc)).storage
    }

    /// The backbone's tensors with PyTorch names and layouts: conv weights `[out, in, kh, kw]`,
    /// GroupNorm `weight`/`bias` `[channels]`, in network order.
    public func pytorchTensors() -> [(name: String, shape: [Int], values: [Float])] {
        var out: [(String, [Int], [Float])] = []
        func visit(_ layer: Layer) {
            switch layer {
            case let s as Sequential: s.layers.forEach(visit)
            case let r as ResidualBlock:
                visit(r.main)
                if let shortcut = r.shortcut { visit(shortcut) }
            case let conv as Conv2d:
                out.append((conv.weight.name, [conv.outChannels, conv.inChannels, conv.kernel, conv.kernel], conv.pytorchWeight))
                if let b = conv.bias { out.append((b.name, b.shape, b.value)) }
            default:
                for p in layer.parameters { out.append((p.name, p.shape, p.value)) }
            }
        }
        visit(backbone)
        return out
    }

    /// The backbone as an ONNX model (opset 17, standard ops only): input `inputName`
    /// `[batch, c, h, w]` with a symbolic batch, output "features" `[batch, featureDimension]`.
    public func onnxModel(metadata: [String: String] = [:]) throws -> [UInt8] {
        try OnnxGraphWriter.model(for: self, metadata: metadata)
    }
}

extension Conv2d {
    /// The weight permuted from our `[out, kh, kw, in]` to PyTorch's `[out, in, kh, kw]`.
    var pytorchWeight: [Float] {
        let k = kernel
        var out = [Float](repeating: 0, count: weight.count)
        for o in 0..<outChannels {
            for y in 0..<k {
                for x in 0..<k {
                    for i in 0..<inChannels { out[((o * inChannels + i) * k + y) * k + x] = weight.value[((o * k + y) * k + x) * inChannels + i] }
                }
            }
        }
        return out
    }
}
