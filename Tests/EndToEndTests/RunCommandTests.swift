import Foundation
import Glibc
import Testing
import TestSupport

/// `ssl-daemon run` end to end: the built binary on real files, real signals, a real stream.
@Suite("ssl-daemon run (binary)", .serialized, .timeLimit(.minutes(20)))
struct RunCommandTests {
    /// A small, quick configuration (tests run a debug build).
    static let smallConfig = """
        [decode]
        size = 64
        fps = 8.0
        [training]
        batch = 16
        max_reuse = 4
        [objective]
        queue = 256
        pirl_bank = 1024
        pirl_negatives = 256
        [optimizer]
        warmup_steps = 5
        [pairing.image]
        output_size = 32
        [http]
        listen = "127.0.0.1:0"
        """

    struct Workspace {
        let root: URL
        var media: URL { root.appendingPathComponent("media") }
        var state: URL { root.appendingPathComponent("state") }
        var config: URL { root.appendingPathComponent("small.toml") }

        /// `topLevel` goes before the config's tables (keys such as `grace_seconds`), `extraConfig` after.
        init(clips: [String], topLevel: String = "", extraConfig: String = "") throws {
            root = try makeTemporaryDirectory("ssl-run")
            try FileManager.default.createDirectory(at: root.appendingPathComponent("media"), withIntermediateDirectories: true)
            for clip in clips {
                try FileManager.default.copyItem(atPath: sampleClip(clip), toPath: root.appendingPathComponent("media/\(clip)").path)
            }
            try (topLevel + "\n" + RunCommandTests.smallConfig + "\n" + extraConfig).write(to: root.appendingPathComponent("small.toml"), atomically: true, encoding: .utf8)
        }

        func arguments(_ extra: [String]) -> [String] {
            ["run", "--config", config.path, "--watch", media.path, "--state-dir", state.path] + extra
        }

        var ledger: String { (try? String(contentsOf: state.appendingPathComponent("ledger.jsonl"), encoding: .utf8)) ?? "" }
    }

    static func summary(_ stdout: String) throws -> [String: Any] {
        try jsonObject(try #require(stdout.split(separator: "\n").last))
    }

    @Test("--once on samples: exit 0, a checkpoint, every file in the ledger, loss going down, loadable by Python's safetensors")
    func onceOnSamples() throws {
        let ws = try Workspace(clips: ["h264_aac.mp4", "vp9_opus.webm", "mpeg4_mp3.mkv", "video_only.mp4", "audio_only.m4a"])
        defer { removeTemporaryDirectory(ws.root) }
        let result = try run(try daemonBinary(), ws.arguments(["--once", "--epochs", "3"]))
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        let s = try Self.summary(result.stdout)
        let steps = try #require(s["steps"] as? Int)
        #expect(steps >= 40, "only \(steps) steps")
        let first = try #require(s["loss_first"] as? Double), last = try #require(s["loss_last"] as? Double)
        #expect(last < first, "loss \(first) → \(last)")
        #expect((s["files"] as? [String: Int])?["ok"] == 5)
        let pairs = try #require(s["pairs"] as? [String: Int])
        #expect((pairs["temporal"] ?? 0) > 0 && (pairs["audio_video"] ?? 0) > 0)
        let checkpoint = try #require(s["checkpoint"] as? String)
        #expect(FileManager.default.fileExists(atPath: checkpoint))
        for clip in ["h264_aac.mp4", "vp9_opus.webm", "mpeg4_mp3.mkv", "video_only.mp4", "audio_only.m4a"] {
            #expect(ws.ledger.contains(clip))
        }
        let inspect = try run(try daemonBinary(), ["inspect", ws.state.path])
        #expect(inspect.status == 0)
        #expect(try jsonObject(Substring(inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))["step"] as? Int == steps)
        let python = repositoryRoot.appendingPathComponent(".venv/bin/python").path
        let load = try run(python, ["-c", """
            import sys
            from safetensors.numpy import load_file
            from safetensors import safe_open
            t = load_file(sys.argv[1])
            with safe_open(sys.argv[1], framework="numpy") as f:
                meta = f.metadata()
            assert int(meta["step"]) == int(sys.argv[2]), meta["step"]
            assert t["video.backbone.conv1.weight"].shape == (32, 3, 3, 3)
            assert "pirl.bank" in t and "audio.backbone.conv1.weight" in t and "queue.keys" not in t  # the default method, PIRL
            print(len(t))
            """, checkpoint, String(steps)])
        #expect(load.status == 0, "\(load.stderr)")
    }

    @Test("after SIGTERM (exit 0, checkpoint), a restart resumes the step count and does not redo files")
    func sigtermAndResume() throws {
        let ws = try Workspace(clips: ["h264_aac.mp4", "video_only.mp4"])
        defer { removeTemporaryDirectory(ws.root) }
        let first = try DaemonProcess(try daemonBinary(), ws.arguments(["--epochs", "50"]), logDirectory: ws.root, name: "first")
        #expect(first.waitForStatus(in: ws.state, seconds: 120) { $0.step >= 20 })
        first.signal(SIGTERM)
        let ended = first.wait(seconds: 60)
        #expect(ended?.status == 0 && ended?.signalled == false, "\(first.stderr.suffix(1500))")
        let s1 = try Self.summary(first.stdout)
        let steps1 = try #require(s1["steps"] as? Int)
        #expect(steps1 >= 20)
        #expect(first.stderr.contains("checkpoint written"))

        let second = try run(try daemonBinary(), ws.arguments(["--epochs", "1", "--max-steps", String(steps1 + 5)]))
        #expect(second.status == 0, "\(second.stderr.suffix(1500))")
        #expect(second.stderr.contains("resumed") && second.stderr.contains("step=\(steps1)"))
        let s2 = try Self.summary(second.stdout)
        #expect(s2["steps"] as? Int == steps1 + 5)
        // Files the ledger marked done in the first run are not read again.
        let doneFirst = Set(first.stderr.split(separator: "\n").filter { $0.contains("file done") }.compactMap { $0.split(separator: "path=").last.map(String.init) })
        for path in doneFirst { #expect(!second.stderr.contains("file done epochs=1 path=\(path)"), "\(path) was read again") }
    }

    @Test("a bad file dropped into a watched directory is recorded as bad and training goes on")
    func badFile() throws {
        let ws = try Workspace(clips: ["h264_aac.mp4"])
        defer { removeTemporaryDirectory(ws.root) }
        try Data("definitely not a video".utf8).write(to: ws.media.appendingPathComponent("broken.mp4"))
        try Data((0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: ws.media.appendingPathComponent("noise.mkv"))
        let result = try run(try daemonBinary(), ws.arguments(["--once", "--epochs", "2"]))
        #expect(result.status == 0, "\(result.stderr.suffix(1500))")
        let s = try Self.summary(result.stdout)
        #expect((s["files"] as? [String: Int]) == ["ok": 1, "bad": 2, "failed": 0])
        #expect((s["steps"] as? Int ?? 0) > 0)
        let bad = ws.ledger.split(separator: "\n").filter { $0.contains("\"status\":\"bad\"") }
        #expect(bad.count == 2 && bad.allSatisfy { $0.contains("\"reason\"") })
        #expect(result.stderr.contains("bad file skipped"))
    }

    @Test("config: --print-config shows every section; unknown keys and bad values name the key")
    func config() throws {
        let printed = try run(try daemonBinary(), ["run", "--print-config", "--watch", "/tmp"])
        #expect(printed.status == 0)
        for section in ["[sources]", "[decode]", "[model]", "[objective]", "[optimizer]", "[training]", "[checkpoint]", "[pairing]", "[pairing.mix]", "[pairing.image]", "[pairing.audio]"] {
            #expect(printed.stdout.contains(section), "missing \(section)")
        }
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        // The printed config reads back unchanged.
        let roundTrip = dir.appendingPathComponent("printed.toml")
        try printed.stdout.write(to: roundTrip, atomically: true, encoding: .utf8)
        let again = try run(try daemonBinary(), ["run", "--print-config", "--config", roundTrip.path])
        #expect(again.status == 0 && again.stdout == printed.stdout, "\(again.stderr)")
        for (text, key) in [("bogus = 1", "bogus"), ("[training]\nbatchsize = 3", "training.batchsize"), ("[training]\nbatch = \"big\"", "training.batch"), ("[objective]\nkind = \"magic\"", "objective.kind")] {
            let file = dir.appendingPathComponent("bad.toml")
            try text.write(to: file, atomically: true, encoding: .utf8)
            let r = try run(try daemonBinary(), ["run", "--config", file.path, "--watch", "/tmp"])
            #expect(r.status == 2 && r.stderr.contains(key), "\(text): \(r.stderr)")
        }
    }

    @Test("exact resume: 40 steps in one run equal 13 + 14 + 13 steps over three runs, every tensor bit for bit")
    func exactResume() throws {
        let ws = try Workspace(clips: ["h264_aac.mp4", "vp9_opus.webm"], extraConfig: "[sources]\nsettle_seconds = 0.0\n")
        defer { removeTemporaryDirectory(ws.root) }
        func arguments(_ state: String, _ steps: Int) -> [String] {
            ["run", "--config", ws.config.path, "--watch", ws.media.path, "--state-dir", ws.root.appendingPathComponent(state).path,
             "--deterministic", "--seed", "7", "--epochs", "10", "--max-steps", String(steps)]
        }
        let whole = try run(try daemonBinary(), arguments("whole", 40))
        #expect(whole.status == 0, "\(whole.stderr.suffix(1500))")
        var progressSeen: [String] = []
        for steps in [13, 27, 40] {
            let part = try run(try daemonBinary(), arguments("parts", steps))
            #expect(part.status == 0, "\(part.stderr.suffix(1500))")
            #expect(try Self.summary(part.stdout)["steps"] as? Int == steps)
            let inspect = try jsonObject(Substring(try run(try daemonBinary(), ["inspect", ws.root.appendingPathComponent("parts").path]).stdout))
            progressSeen.append(inspect["progress"] as? String ?? "")
            #expect((inspect["replay_entries"] as? Int ?? 0) > 0, "the replay buffer was not checkpointed")
        }
        // The stops fell inside files, so resuming had to rebuild pairing state mid-file.
        #expect(progressSeen.prefix(2).allSatisfy { $0.contains("\"items\"") }, "\(progressSeen)")
        let python = repositoryRoot.appendingPathComponent(".venv/bin/python").path
        let compare = try run(python, ["-c", """
            import sys
            import numpy as np
            from safetensors import safe_open
            a, b = (safe_open(p, framework="numpy") for p in sys.argv[1:3])
            assert set(a.keys()) == set(b.keys()), set(a.keys()) ^ set(b.keys())
            differ = [k for k in sorted(a.keys()) if a.get_tensor(k).tobytes() != b.get_tensor(k).tobytes()]
            assert not differ, f"tensors differ: {differ}"
            ma, mb = a.metadata(), b.metadata()
            differ = [k for k in ma if k not in ("wall_clock", "config") and ma[k] != mb.get(k)]
            assert not differ, f"metadata differs: {differ}"
            assert ma["step"] == "40" and len(list(a.keys())) > 50
            """,
            ws.root.appendingPathComponent("whole/checkpoints/ckpt-000000000040.safetensors").path,
            ws.root.appendingPathComponent("parts/checkpoints/ckpt-000000000040.safetensors").path])
        #expect(compare.status == 0, "\(compare.stderr)")
    }

    @Test("every objective.kind through the daemon: 10 steps on a clip, a checkpoint that records the method, exports and embeds; resuming it under another method is refused",
          arguments: ["moco", "infonce", "vicreg", "pirl", "barlow", "byol", "simsiam", "dino", "swav"])
    func eachMethod(kind: String) throws {
        let ws = try Workspace(clips: ["h264_aac.mp4"])
        defer { removeTemporaryDirectory(ws.root) }
        func setMethod(_ kind: String) throws {
            let text = try String(contentsOf: ws.config, encoding: .utf8)
            guard let table = text.range(of: "[objective]\n") else { throw POSIXError(.EINVAL) }
            let rest = text[table.upperBound...].split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("kind = ") }
            try (text[..<table.upperBound] + "kind = \"\(kind)\"\n" + rest.joined(separator: "\n")).write(to: ws.config, atomically: true, encoding: .utf8)
        }
        try setMethod(kind)
        let r = try run(try daemonBinary(), ws.arguments(["--epochs", "20", "--max-steps", "10"]))
        #expect(r.status == 0, "\(kind): \(r.stderr.suffix(1500))")
        let s = try Self.summary(r.stdout)
        #expect(s["steps"] as? Int == 10, "\(kind): \(s)")
        #expect((s["loss_last"] as? Double)?.isFinite == true, "\(kind): \(s)")
        let out = ws.root.appendingPathComponent("export")
        let export = try run(try daemonBinary(), ["export", "--from", ws.state.path, "--out", out.path])
        #expect(export.status == 0, "\(kind): \(export.stderr)")
        let embeddings = ws.root.appendingPathComponent("video.npy")
        let embed = try run(try daemonBinary(), ["embed", "--from", ws.state.path, "--modality", "video", "--out", embeddings.path, sampleClip("h264_aac.mp4")])
        #expect(embed.status == 0, "\(kind): \(embed.stderr)")
        let python = repositoryRoot.appendingPathComponent(".venv/bin/python").path
        let check = try run(python, ["-c", """
            import glob, sys, numpy as np, onnxruntime as ort
            from safetensors import safe_open
            e = np.load(sys.argv[1]); assert e.ndim == 2 and e.shape[0] > 0 and np.isfinite(e).all(), e.shape
            ort.InferenceSession(sys.argv[2] + "/video_encoder.onnx")
            ckpt = sorted(glob.glob(sys.argv[3] + "/checkpoints/ckpt-*.safetensors"))[-1]
            meta = safe_open(ckpt, framework="numpy").metadata()
            assert meta["objective"] == sys.argv[4], meta.get("objective")
            """, embeddings.path, out.path, ws.state.path, kind])
        #expect(check.status == 0, "\(kind): \(check.stderr)")
        // Resuming under another method names both.
        let other = kind == "moco" ? "barlow" : "moco"
        try setMethod(other)
        let wrong = try run(try daemonBinary(), ws.arguments(["--max-steps", "12"]))
        #expect(wrong.status != 0 && wrong.stderr.contains("objective.kind = \(kind)"), "\(kind) → \(other): status \(wrong.status), \(wrong.stderr.suffix(800))")
    }

    @Test("--max-steps 0 checkpoints the initial weights without training")
    func maxStepsZero() throws {
        let ws = try Workspace(clips: ["video_only.mp4"])
        defer { removeTemporaryDirectory(ws.root) }
        let r = try run(try daemonBinary(), ws.arguments(["--max-steps", "0"]))
        #expect(r.status == 0, "\(r.stderr)")
        let s = try Self.summary(r.stdout)
        #expect(s["steps"] as? Int == 0)
        #expect((s["checkpoint"] as? String)?.hasSuffix("ckpt-000000000000.safetensors") == true)
    }

    @Test("the replay ratio holds whatever the decoding speed: with replay_ratio 1 the trainer waits for new examples instead of reusing old ones (max_reuse 4 would allow 4 uses)")
    func replayRatio() throws {
        let ws = try Workspace(clips: ["h264_aac.mp4"])
        defer { removeTemporaryDirectory(ws.root) }
        try Self.smallConfig.replacingOccurrences(of: "max_reuse = 4", with: "max_reuse = 4\nreplay_ratio = 1")
            .write(to: ws.config, atomically: true, encoding: .utf8)
        let r = try run(try daemonBinary(), ws.arguments(["--epochs", "1000", "--max-steps", "30"]))
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        let s = try Self.summary(r.stdout)
        let produced = try #require(s["pairs"] as? [String: Int]).values.reduce(0, +)
        let trained = try #require(s["pairs_trained"] as? Int)
        #expect(s["steps"] as? Int == 30)
        #expect(trained >= 60 && trained <= produced, "trained \(trained) from \(produced) produced")
    }

    @Test("training.prefill holds the first step until the buffer has received that many examples; a FIFO buffer trains too")
    func prefillAndFIFO() throws {
        let ws = try Workspace(clips: ["h264_aac.mp4"])
        defer { removeTemporaryDirectory(ws.root) }
        // Without the prefill two steps need about 8 examples and files stop at 4 batches of credit (64).
        try Self.smallConfig.replacingOccurrences(of: "max_reuse = 4", with: "max_reuse = 4\nprefill = 400")
            .appending("\n[pairing]\nbuffer_policy = \"fifo\"\nbuffer_bytes = 2097152\n")
            .write(to: ws.config, atomically: true, encoding: .utf8)
        let printed = try run(try daemonBinary(), ["run", "--config", ws.config.path, "--print-config"])
        #expect(printed.stdout.contains("buffer_policy = \"fifo\"") && printed.stdout.contains("prefill = 400"), "\(printed.stdout)")
        let r = try run(try daemonBinary(), ws.arguments(["--epochs", "1000", "--max-steps", "2"]))
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        let s = try Self.summary(r.stdout)
        let produced = try #require(s["pairs"] as? [String: Int]).values.reduce(0, +)
        #expect(s["steps"] as? Int == 2)
        #expect(produced >= 400, "the trainer started after \(produced) examples")
    }
}
