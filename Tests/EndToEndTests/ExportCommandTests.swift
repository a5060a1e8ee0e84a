import Foundation
import Testing
import TestSupport

/// `ssl-daemon export` and `embed` end to end: a checkpoint from a real (short) run, checked by
/// Python's onnx, onnxruntime and safetensors; bad inputs each fail cleanly.
@Suite("ssl-daemon export and embed (binary, Python clients)", .serialized, .timeLimit(.minutes(20)))
struct ExportCommandTests {
    static var python: String { repositoryRoot.appendingPathComponent(".venv/bin/python").path }

    /// A state directory with a checkpoint after a few steps on two clips with audio.
    static func trainedState(_ root: URL) throws -> URL {
        let media = root.appendingPathComponent("media")
        try FileManager.default.createDirectory(at: media, withIntermediateDirectories: true)
        for clip in ["h264_aac.mp4", "vp9_opus.webm"] {
            try FileManager.default.copyItem(atPath: sampleClip(clip), toPath: media.appendingPathComponent(clip).path)
        }
        let config = root.appendingPathComponent("small.toml")
        try RunCommandTests.smallConfig.write(to: config, atomically: true, encoding: .utf8)
        let state = root.appendingPathComponent("state")
        let r = try run(try daemonBinary(), ["run", "--config", config.path, "--watch", media.path, "--state-dir", state.path, "--epochs", "2", "--max-steps", "6"])
        #expect(r.status == 0, "\(r.stderr.suffix(1500))")
        return state
    }

    /// Every file in `directory`, hidden ones included (a leftover temporary file counts).
    static func contents(_ directory: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
    }

    @Test("export writes checkable ONNX models, PyTorch-layout safetensors and a manifest; onnxruntime on embed's dumped inputs reproduces embed within 1e-4")
    func exportAndEmbed() throws {
        let root = try makeTemporaryDirectory("ssl-export")
        defer { removeTemporaryDirectory(root) }
        let state = try Self.trainedState(root)
        let out = root.appendingPathComponent("export")
        let export = try run(try daemonBinary(), ["export", "--from", state.path, "--out", out.path])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(Self.contents(out) == ["audio_encoder.onnx", "encoders.safetensors", "manifest.json", "video_encoder.onnx"])

        let inputs = root.appendingPathComponent("inputs")
        let clips = ["h264_aac.mp4", "vp9_opus.webm", "mpeg4_mp3.mkv"].map(sampleClip)
        for (modality, extra) in [("video", [sampleClip("video_only.mp4")]), ("audio", [sampleClip("audio_only.m4a")])] {
            let embed = try run(try daemonBinary(), ["embed", "--from", state.path, "--modality", modality, "--window", "0.5",
                                                      "--dump-inputs", inputs.path, "--out", root.appendingPathComponent("\(modality).npy").path] + clips + extra)
            #expect(embed.status == 0, "\(embed.stderr)")
        }
        let check = try run(Self.python, ["-c", """
            import json, sys
            import numpy as np, onnx, onnxruntime as ort
            from safetensors.numpy import load_file
            out, root = sys.argv[1], sys.argv[2]
            manifest = json.load(open(f"{out}/manifest.json"))
            assert manifest["step"] == 6, manifest["step"]
            weights = load_file(f"{out}/encoders.safetensors")
            listed = {}
            for modality in ("video", "audio"):
                entry = manifest["encoders"][modality]
                model = onnx.load(f"{out}/{entry['onnx']}")
                onnx.checker.check_model(model, full_check=True)
                assert model.opset_import[0].version >= 17
                session = ort.InferenceSession(f"{out}/{entry['onnx']}", providers=["CPUExecutionProvider"])
                (inp,), (outp,) = session.get_inputs(), session.get_outputs()
                assert inp.name == entry["input"]["name"] and outp.name == "features", (inp.name, outp.name)
                assert inp.shape[0] == "batch" and inp.shape[1:] == entry["input"]["shape"][1:], inp.shape
                x = np.load(f"{root}/inputs/{modality}_inputs.npy")
                reference = np.load(f"{root}/{modality}.npy")
                rows = [json.loads(l) for l in open(f"{root}/{modality}.jsonl")]
                assert x.shape[0] == reference.shape[0] == len(rows) >= 8, (x.shape, reference.shape, len(rows))
                assert reference.shape[1] == entry["embedding_size"] and reference.dtype == np.float32
                assert all(r["end"] > r["start"] and r["start"] - 0.5 <= r["time"] <= r["end"] + 0.5 for r in rows), rows
                y = session.run(None, {inp.name: x})[0]
                diff = float(np.abs(y - reference).max())
                assert diff <= 1e-4, f"{modality}: onnxruntime differs from embed by {diff}"
                assert float(np.abs(reference).max()) > 1e-3, "features are all zero"
                single = session.run(None, {inp.name: x[:1]})[0]
                assert np.abs(single - reference[:1]).max() <= 1e-4, "batch of one differs"
                listed.update(entry["tensors"])
                print(modality, x.shape, diff)
            assert {k: list(v.shape) for k, v in weights.items()} == listed, "safetensors names/shapes differ from the manifest"
            assert list(weights["video.backbone.conv1.weight"].shape) == [32, 3, 3, 3]
            """, out.path, root.path])
        #expect(check.status == 0, "\(check.stderr)\(check.stdout)")
    }

    @Test("the resnet-small video encoder (residual blocks, shortcut convolutions) exports too: onnxruntime matches embed within 1e-4")
    func residualEncoder() throws {
        let root = try makeTemporaryDirectory("ssl-export-resnet")
        defer { removeTemporaryDirectory(root) }
        let config = root.appendingPathComponent("resnet.toml")
        try "[model]\nvideo = \"resnet-small\"\n[pairing.image]\noutput_size = 48\n".write(to: config, atomically: true, encoding: .utf8)
        let state = root.appendingPathComponent("state")
        let initial = try run(try daemonBinary(), ["run", "--config", config.path, "--watch", root.path, "--state-dir", state.path, "--max-steps", "0"])
        #expect(initial.status == 0, "\(initial.stderr)")
        let out = root.appendingPathComponent("export")
        #expect(try run(try daemonBinary(), ["export", "--from", state.path, "--out", out.path]).status == 0)
        let embed = try run(try daemonBinary(), ["embed", "--from", state.path, "--dump-inputs", root.path, "--out", root.appendingPathComponent("v.npy").path, sampleClip("h264_aac.mp4")])
        #expect(embed.status == 0, "\(embed.stderr)")
        let check = try run(Self.python, ["-c", """
            import json, sys
            import numpy as np, onnx, onnxruntime as ort
            root = sys.argv[1]
            assert json.load(open(f"{root}/export/manifest.json"))["encoders"]["video"]["architecture"] == "resnet-small"
            onnx.checker.check_model(onnx.load(f"{root}/export/video_encoder.onnx"), full_check=True)
            session = ort.InferenceSession(f"{root}/export/video_encoder.onnx", providers=["CPUExecutionProvider"])
            x = np.load(f"{root}/video_inputs.npy")
            assert x.shape[1:] == (3, 48, 48), x.shape
            diff = float(np.abs(session.run(None, {"frames": x})[0] - np.load(f"{root}/v.npy")).max())
            assert diff <= 1e-4, diff
            """, root.path])
        #expect(check.status == 0, "\(check.stderr)")
    }

    @Test("bad inputs: missing or damaged checkpoint, unwritable output, audio from silent media, unreadable media: an error naming it, non-zero exit, nothing left behind")
    func badInputs() throws {
        let root = try makeTemporaryDirectory("ssl-export-bad")
        defer { removeTemporaryDirectory(root) }
        let state = try Self.trainedState(root)
        let binary = try daemonBinary()
        let damaged = root.appendingPathComponent("damaged.safetensors")
        try Data("this is not a checkpoint".utf8).write(to: damaged)
        let notMedia = root.appendingPathComponent("notes.mp4")
        try Data("plain text, not a video".utf8).write(to: notMedia)
        let blocker = root.appendingPathComponent("blocker")
        try Data().write(to: blocker)
        let out = root.appendingPathComponent("out")

        let cases: [(String, [String], String)] = [
            ("missing checkpoint", ["export", "--from", root.appendingPathComponent("nowhere").path, "--out", out.path], "nowhere"),
            ("damaged checkpoint", ["export", "--from", damaged.path, "--out", out.path], "damaged.safetensors"),
            ("unwritable output folder", ["export", "--from", state.path, "--out", blocker.appendingPathComponent("x").path], "blocker/x"),
            ("audio from video-only media", ["embed", "--from", state.path, "--modality", "audio", "--out", out.appendingPathComponent("a.npy").path,
                                              "--dump-inputs", out.appendingPathComponent("in").path, sampleClip("h264_aac.mp4"), sampleClip("video_only.mp4")], "video_only.mp4"),
            ("unreadable media", ["embed", "--from", state.path, "--out", out.appendingPathComponent("v.npy").path, sampleClip("h264_aac.mp4"), notMedia.path], "notes.mp4"),
            ("missing media", ["embed", "--from", state.path, "--out", out.appendingPathComponent("v.npy").path, root.appendingPathComponent("gone.mp4").path], "gone.mp4"),
            ("damaged checkpoint for embed", ["embed", "--from", damaged.path, "--out", out.appendingPathComponent("v.npy").path, sampleClip("h264_aac.mp4")], "damaged.safetensors"),
        ]
        for (name, arguments, mentioned) in cases {
            let r = try run(binary, arguments)
            #expect(r.status != 0, "\(name): exit \(r.status)")
            #expect(r.stderr.contains(mentioned), "\(name): the error does not name \(mentioned): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out.path), "\(name): left \(Self.contents(out))")
            #expect(Self.contents(blocker.deletingLastPathComponent()).filter { $0.hasPrefix(".") }.isEmpty, "\(name): left a temporary file")
        }
        // An existing output folder is left as it was: no partial or temporary files in it.
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let r = try run(binary, ["embed", "--from", state.path, "--out", out.appendingPathComponent("v.npy").path, sampleClip("h264_aac.mp4"), notMedia.path])
        #expect(r.status != 0 && Self.contents(out).isEmpty, "\(Self.contents(out))")
    }
}
