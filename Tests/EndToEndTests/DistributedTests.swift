import Foundation
import Glibc
import Testing
import TestSupport

/// Data-parallel training over MPI with real `mpirun` (Open MPI), two ranks oversubscribed on this
/// machine: equivalence with one process on the same examples, uneven input, a stalled rank and a
/// dead one.
@Suite("Distributed training under mpirun", .serialized, .timeLimit(.minutes(15)))
struct DistributedTests {
    /// Open MPI refuses root unless told it is deliberate (its documented variables).
    static let environment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]
    static let python = repositoryRoot.appendingPathComponent(".venv/bin/python").path
    static let compare = repositoryRoot.appendingPathComponent("Tests/EndToEndTests/Python/compare_states.py").path
    /// A learning rate at which 20 steps on noise stay well-conditioned: float rounding (sums in
    /// another order on two ranks) then stays near 1e-7 instead of being amplified step by step.
    static let settings = ["--learning-rate", "0.003", "--steps", "20"]
    /// Tolerance on parameters, key encoder and queue (measured: below 1e-6).
    static let tolerance = "1e-4"

    /// Whether `pid` is a live process: not gone, and not a zombie that nobody has reaped (in a
    /// container the orphaned ranks' new parent may never reap them).
    static func isRunning(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    static func mpirun(_ ranks: Int, _ arguments: [String]) throws -> ProcessResult {
        try run("mpirun", ["--oversubscribe", "-np", String(ranks), try daemonBinary()] + arguments, environment: environment)
    }

    static func alone(_ arguments: [String]) throws -> ProcessResult {
        try run(try daemonBinary(), arguments)
    }

    /// compare_states.py's verdict and output.
    static func compareStates(_ a: URL, _ b: URL, _ extra: [String]) throws -> ProcessResult {
        try run(python, [compare, a.path, b.path] + extra)
    }

    @Test("2 ranks with batch b train like 1 process with batch 2b; the ranks stay bit-identical", arguments: ["moco", "vicreg", "pirl", "barlow", "byol", "simsiam", "dino", "swav"])
    func equivalence(objective: String) throws {
        let dir = try makeTemporaryDirectory("ssl-mpi")
        defer { removeTemporaryDirectory(dir) }
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        // Barlow Twins on 16 pairs of 128-d embeddings standardises each dimension over fewer rows
        // than dimensions: rounding differences in the summation order grow about a hundredfold
        // every 5 steps (measured: 1.5e-8 after 1 step, 1.5e-5 after 5, 1.8e-3 after 20).
        let settings = objective == "barlow" ? ["--learning-rate", "0.003", "--steps", "5"] : Self.settings
        let single = try Self.alone(["bench", "distributed", "--objective", objective, "--batch", "16", "--out", one.path] + settings)
        #expect(single.status == 0, "\(single.stderr)")
        let pair = try Self.mpirun(2, ["bench", "distributed", "--objective", objective, "--batch", "8", "--out", two.path] + settings)
        #expect(pair.status == 0, "\(pair.stdout) \(pair.stderr)")
        #expect(pair.stdout.contains("\"ranks\": 2"), "\(pair.stdout)")
        let rank0 = two.appendingPathComponent("rank-0.safetensors"), rank1 = two.appendingPathComponent("rank-1.safetensors")
        let same = try Self.compareStates(one.appendingPathComponent("rank-0.safetensors"), rank0, ["--atol", Self.tolerance, "--ignore", "optimizer."])
        #expect(same.status == 0, "\(objective): \(same.stdout) \(same.stderr)")
        let identical = try Self.compareStates(rank0, rank1, ["--identical"])
        #expect(identical.status == 0, "\(objective): ranks differ: \(identical.stdout)")
    }

    @Test("without the key all-gather the ranks' queues diverge: the equivalence test can fail")
    func keyGatherMatters() throws {
        let dir = try makeTemporaryDirectory("ssl-mpi")
        defer { removeTemporaryDirectory(dir) }
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        #expect(try Self.alone(["bench", "distributed", "--batch", "16", "--out", one.path] + Self.settings).status == 0)
        let pair = try Self.mpirun(2, ["bench", "distributed", "--batch", "8", "--no-key-gather", "--out", two.path] + Self.settings)
        #expect(pair.status == 0, "\(pair.stderr)")
        let queue = try Self.compareStates(one.appendingPathComponent("rank-0.safetensors"), two.appendingPathComponent("rank-0.safetensors"),
                                           ["--atol", Self.tolerance, "--ignore", "optimizer.", "--expect-differ", "queue."])
        #expect(queue.status == 0, "the queues did not diverge: \(queue.stdout)")
        let ranks = try Self.compareStates(two.appendingPathComponent("rank-0.safetensors"), two.appendingPathComponent("rank-1.safetensors"), ["--identical"])
        #expect(ranks.status != 0, "ranks identical without the gather: \(ranks.stdout)")
    }

    @Test("uneven input: rank 1 without data for 5 steps; the run completes and matches one process fed the same global batches")
    func unevenInput() throws {
        let dir = try makeTemporaryDirectory("ssl-mpi")
        defer { removeTemporaryDirectory(dir) }
        let one = dir.appendingPathComponent("one"), two = dir.appendingPathComponent("two")
        let drop = ["--drop-rows", "8-16", "--drop-steps", "5-10"]
        #expect(try Self.alone(["bench", "distributed", "--batch", "16", "--out", one.path] + drop + Self.settings).status == 0)
        let pair = try Self.mpirun(2, ["bench", "distributed", "--batch", "8", "--out", two.path] + drop + Self.settings)
        #expect(pair.status == 0, "\(pair.stderr)")
        let same = try Self.compareStates(one.appendingPathComponent("rank-0.safetensors"), two.appendingPathComponent("rank-0.safetensors"),
                                          ["--atol", Self.tolerance, "--ignore", "optimizer."])
        #expect(same.status == 0, "\(same.stdout) \(same.stderr)")
    }

    @Test("a parameter that differs on one rank is caught by the checksum: both ranks exit 4, naming the step")
    func checksumMismatch() throws {
        let clean = try Self.mpirun(2, ["bench", "distributed", "--batch", "4", "--steps", "6", "--checksum-every", "1"])
        #expect(clean.status == 0, "\(clean.stderr.suffix(1000))")
        let result = try Self.mpirun(2, ["bench", "distributed", "--batch", "4", "--steps", "6", "--checksum-every", "1",
                                         "--corrupt-rank", "1", "--corrupt-at", "2"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("parameters differ at step 3"), "\(result.stderr.suffix(2000))")
    }

    @Test("a rank stalled inside a step past the step timeout: both ranks exit, non-zero, within the bound")
    func stalledRank() throws {
        let dir = try makeTemporaryDirectory("ssl-mpi")
        defer { removeTemporaryDirectory(dir) }
        let started = monotonicSeconds()
        let result = try Self.mpirun(2, [
            "bench", "distributed", "--batch", "4", "--steps", "10", "--stall-rank", "1", "--stall-at", "3",
            "--stall-seconds", "600", "--step-timeout", "5", "--out", dir.path,
        ])
        let took = monotonicSeconds() - started
        #expect(result.status != 0)
        #expect(took < 120, "took \(took) s")
        #expect(result.stderr.contains("did not complete in time"), "\(result.stderr.suffix(2000))")
        for rank in 0..<2 {
            let pid = try String(contentsOf: dir.appendingPathComponent("rank-\(rank).pid"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(!Self.isRunning(pid_t(pid)!), "rank \(rank) (pid \(pid)) is still running")
        }
    }

    @Test("SIGKILL of rank 1 mid-run: the job exits non-zero within 30 s and leaves no process behind")
    func deadRank() throws {
        let dir = try makeTemporaryDirectory("ssl-mpi")
        defer { removeTemporaryDirectory(dir) }
        let job = try DaemonProcess("/usr/bin/mpirun", ["--oversubscribe", "-np", "2", try daemonBinary(),
            "bench", "distributed", "--batch", "4", "--steps", "100000", "--log-steps", "--out", dir.path],
            environment: Self.environment, logDirectory: dir, name: "job")
        #expect(job.waitFor(seconds: 120) { $0.contains("step 3 ") }, "\(job.stderr.suffix(1000))")
        let pids = try (0..<2).map { rank in
            pid_t(try String(contentsOf: dir.appendingPathComponent("rank-\(rank).pid"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!
        }
        let killed = monotonicSeconds()
        Glibc.kill(pids[1], SIGKILL)
        let ended = job.wait(seconds: 60)
        let took = monotonicSeconds() - killed
        #expect(ended != nil && ended?.status != 0, "\(String(describing: ended))")
        #expect(took <= 30, "took \(took) s")
        usleep(500_000)
        #expect(!Self.isRunning(pids[0]), "rank 0 is still running")
    }

    /// `mpirun -np 2 ssl-daemon run` with the small test config over `clips` copied into a
    /// workspace; each rank's log under the workspace.
    static func daemonJob(_ ws: RunCommandTests.Workspace, _ extra: [String], name: String) throws -> DaemonProcess {
        try DaemonProcess("/usr/bin/mpirun", ["--oversubscribe", "-np", "2", try daemonBinary()] + ws.arguments(extra),
                          environment: environment, logDirectory: ws.root, name: name)
    }

    @Test("mpirun -np 2 ssl-daemon run --once over real clips: both ranks train the same steps, rank 0 checkpoints, and the checkpoint exports and embeds")
    func daemonOnce() throws {
        let ws = try RunCommandTests.Workspace(clips: ["h264_aac.mp4", "vp9_opus.webm", "mpeg4_mp3.mkv", "video_only.mp4", "audio_only.m4a"])
        defer { removeTemporaryDirectory(ws.root) }
        let job = try Self.daemonJob(ws, ["--once", "--epochs", "2"], name: "once")
        let ended = job.wait(seconds: 400)
        #expect(ended?.status == 0, "\(String(describing: ended)) \(job.stderr.suffix(2000))")
        let summaries = try job.stdout.split(separator: "\n").filter { $0.hasPrefix("{") }.map(jsonObject)
        #expect(summaries.count == 2, "\(job.stdout)")
        let steps = summaries.compactMap { $0["steps"] as? Int }
        #expect(steps.count == 2 && steps[0] == steps[1] && steps[0] >= 10, "steps \(steps)")
        // The files are split between the ranks: every one learned, by exactly one rank.
        let ok = summaries.compactMap { ($0["files"] as? [String: Int])?["ok"] }
        #expect(ok.reduce(0, +) == 5, "files ok per rank: \(ok)")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: ws.state.appendingPathComponent("checkpoints").path).filter { $0.hasSuffix(".safetensors") }
        #expect(checkpoints.count == 1, "\(checkpoints)")
        #expect(!FileManager.default.fileExists(atPath: ws.state.appendingPathComponent("rank-1/checkpoints").path), "rank 1 wrote checkpoints")
        let out = ws.root.appendingPathComponent("export")
        let export = try run(try daemonBinary(), ["export", "--from", ws.state.path, "--out", out.path])
        #expect(export.status == 0, "\(export.stderr)")
        let embed = try run(try daemonBinary(), ["embed", "--from", ws.state.path, "--modality", "video", "--out",
                                                 ws.root.appendingPathComponent("video.npy").path, sampleClip("h264_aac.mp4")])
        #expect(embed.status == 0, "\(embed.stderr)")
        let check = try run(Self.python, ["-c", """
            import sys, numpy as np, onnxruntime as ort
            e = np.load(sys.argv[1]); assert e.ndim == 2 and e.shape[0] > 0 and np.isfinite(e).all(), e.shape
            ort.InferenceSession(sys.argv[2] + "/video_encoder.onnx")
            """, ws.root.appendingPathComponent("video.npy").path, out.path])
        #expect(check.status == 0, "\(check.stderr)")
    }

    @Test("SIGKILL of rank 1 while the daemon trains: the job exits non-zero within 30 s, nothing left running; a restart resumes from the last checkpoint on both ranks")
    func daemonRankDeathAndRestart() throws {
        let ws = try RunCommandTests.Workspace(clips: ["h264_aac.mp4", "vp9_opus.webm", "mpeg4_mp3.mkv"])
        defer { removeTemporaryDirectory(ws.root) }
        let job = try Self.daemonJob(ws, ["--epochs", "1000", "--checkpoint-every", "2"], name: "first")
        let checkpoints = ws.state.appendingPathComponent("checkpoints")
        let checkpointed = job.waitFor(seconds: 180) { log in
            log.contains("checkpoint written") && ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path))?.count ?? 0) >= 2
        }
        #expect(checkpointed, "\(job.stderr.suffix(2000))")
        let pids = [ws.state, ws.state.appendingPathComponent("rank-1")].map { DaemonStatus(stateDirectory: $0)?.pid ?? -1 }
        #expect(pids.allSatisfy { $0 > 0 }, "\(pids)")
        let killed = monotonicSeconds()
        Glibc.kill(pids[1], SIGKILL)
        let ended = job.wait(seconds: 60)
        #expect(ended != nil && ended?.status != 0, "\(String(describing: ended))")
        #expect(monotonicSeconds() - killed <= 30)
        usleep(500_000)
        #expect(!Self.isRunning(pids[0]), "rank 0 is still running")

        let restart = try Self.daemonJob(ws, ["--epochs", "1000", "--max-steps", "60"], name: "second")
        let done = restart.wait(seconds: 400)
        #expect(done?.status == 0, "\(String(describing: done)) \(restart.stderr.suffix(2000))")
        let log = restart.stderr
        let resumed = log.split(separator: "\n").first { $0.contains("resumed") && $0.contains("step=") }
        let step = resumed.flatMap { line in line.range(of: "step=").map { Int(line[$0.upperBound...].prefix { $0.isNumber }) ?? 0 } } ?? 0
        #expect(step > 0, "no resume: \(log.prefix(2000))")
        #expect(log.contains("rank started from rank 0's state rank=1 ranks=2 step=\(step)"), "\(log.prefix(3000))")
        let summaries = try restart.stdout.split(separator: "\n").filter { $0.hasPrefix("{") }.map(jsonObject)
        #expect(summaries.count == 2 && summaries.allSatisfy { $0["steps"] as? Int == 60 }, "\(restart.stdout)")
    }

    @Test("SIGTERM to one rank stops every rank after the same step: a final checkpoint, two summaries, mpirun exits 0")
    func daemonSigterm() throws {
        let ws = try RunCommandTests.Workspace(clips: ["h264_aac.mp4", "vp9_opus.webm"])
        defer { removeTemporaryDirectory(ws.root) }
        let job = try Self.daemonJob(ws, ["--epochs", "1000"], name: "sigterm")
        let rank1 = ws.state.appendingPathComponent("rank-1")
        // status.json is rank 0's (its pid is not mpirun's, which waitForStatus would want).
        let deadline = monotonicSeconds() + 180
        while (DaemonStatus(stateDirectory: ws.state)?.step ?? 0) < 10 && job.isRunning && monotonicSeconds() < deadline { usleep(200_000) }
        #expect((DaemonStatus(stateDirectory: ws.state)?.step ?? 0) >= 10, "\(job.stderr.suffix(1500))")
        let pid = try #require(DaemonStatus(stateDirectory: rank1)?.pid)
        Glibc.kill(pid, SIGTERM)
        let ended = job.wait(seconds: 60)
        #expect(ended?.status == 0, "\(String(describing: ended)) \(job.stderr.suffix(1500))")
        let summaries = try job.stdout.split(separator: "\n").filter { $0.hasPrefix("{") }.map(jsonObject)
        #expect(summaries.count == 2, "\(job.stdout)")
        let steps = Set(summaries.compactMap { $0["steps"] as? Int })
        let checkpoint = summaries.compactMap { $0["checkpoint"] as? String }
        #expect(steps.count == 1 && checkpoint.count == 1, "\(job.stdout)")
        #expect(checkpoint.first?.hasSuffix(String(format: "ckpt-%012d.safetensors", steps.first ?? -1)) == true, "\(checkpoint)")
    }
}
