import ArgumentParser
import Foundation
import TemporalContrast

/// `ssl-daemon export`: a checkpoint's encoders as ONNX models, PyTorch-layout safetensors and a
/// manifest saying how to feed them.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a checkpoint's encoders (ONNX, safetensors, manifest.json) for downstream use.",
        discussion: """
            Writes video_encoder.onnx, audio_encoder.onnx (when the checkpoint has an audio encoder),
            encoders.safetensors (backbone weights, PyTorch names and layouts) and manifest.json
            (architecture, input shapes and layout, preprocessing, embedding sizes, step, source).
            Files appear only once all of them are complete.
            """
    )

    @Option(help: "A checkpoint file, or a state directory (its newest valid checkpoint).")
    var from: String

    @Option(help: "Output folder (created when missing).")
    var out: String

    func run() throws {
        let outputs = StagedOutputs()
        do {
            let model = try TrainedModel(from: from)
            let directory = URL(fileURLWithPath: out, isDirectory: true)
            try outputs.prepare(directory: directory)
            var tensors = SafeTensors()
            var encoders: [[String: Any]] = []
            for encoder in [model.video, model.audio].compactMap({ $0 }) {
                let name = "\(encoder.modality.rawValue)_encoder.onnx"
                let onnx = try encoder.onnxModel(metadata: [
                    "ssl_daemon.step": String(model.step), "ssl_daemon.source_checkpoint": model.url.path,
                    "ssl_daemon.architecture": encoder.architecture.rawValue,
                ])
                try outputs.write(Data(onnx), to: directory.appendingPathComponent(name))
                var shapes: [String: [Int]] = [:]
                for t in encoder.pytorchTensors() {
                    tensors.set(t.name, shape: t.shape, values: t.values)
                    shapes[t.name] = t.shape
                }
                encoders.append(Self.manifestEntry(encoder, model: model, onnx: name, tensors: shapes))
            }
            tensors.metadata = ["format": "pt", "step": String(model.step), "source_checkpoint": model.url.path]
            try outputs.write(tensors.serialized(), to: directory.appendingPathComponent("encoders.safetensors"))
            let manifest: [String: Any] = [
                "format": "ssl-daemon-export", "format_version": 1,
                "step": model.step, "source_checkpoint": model.url.path,
                "created": ISO8601DateFormatter().string(from: Date()),
                "weights": "encoders.safetensors",
                "encoders": Dictionary(uniqueKeysWithValues: encoders.map { ($0["modality"] as! String, $0) }),
            ]
            let json = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            try outputs.write(json, to: directory.appendingPathComponent("manifest.json"))
            try outputs.commit()
            print(directory.path)
        } catch {
            outputs.discard()
            FileHandle.standardError.write(Data("ssl-daemon export: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// What a user needs to feed one encoder, as the manifest states it.
    static func manifestEntry(_ encoder: ExportedEncoder, model: TrainedModel, onnx: String, tensors: [String: [Int]]) -> [String: Any] {
        let c = model.config
        var entry: [String: Any] = [
            "modality": encoder.modality.rawValue,
            "architecture": encoder.architecture.rawValue,
            "onnx": onnx,
            "opset": 17,
            "input": ["name": encoder.inputName, "shape": ["batch"] + encoder.inputShape.map { $0 as Any }, "layout": "NCHW", "dtype": "float32"],
            "output": ["name": ExportedEncoder.outputName, "shape": ["batch", encoder.featureDimension], "dtype": "float32"],
            "embedding_size": encoder.featureDimension,
            "tensors": tensors,
        ]
        let input = c.encoderInput
        entry["preprocess"] = encoder.modality == .video ? input.video.manifest : input.audio.manifest
        return entry
    }
}
