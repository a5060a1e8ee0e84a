import Foundation
import Glibc
import Testing
import TestSupport

@Suite("ssl-daemon run: systemd, crashes, live streams (binary)", .serialized, .timeLimit(.minutes(20)))
struct DaemonLifecycleTests {
    @Test("sd_notify: READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 reach NOTIFY_SOCKET")
    func notify() throws {
        let ws = try RunCommandTests.Workspace(clips: ["h264_aac.mp4"])
        defer { removeTemporaryDirectory(ws.root) }
        let listener = try DatagramListener(path: ws.root.appendingPathComponent("notify.sock").path)
        let daemon = try DaemonProcess(
            try daemonBinary(), ws.arguments(["--epochs", "100"]),
            environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "2000000"], logDirectory: ws.root, name: "notify")
        #expect(daemon.waitForStatus(in: ws.state, seconds: 120) { $0.step >= 20 })
        usleep(3_000_000)
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 60)?.status == 0)
        usleep(300_000)
        let messages = listener.messages.joined(separator: "\n")
        #expect(messages.contains("READY=1"))
        #expect(messages.contains("STATUS=step "))
        #expect(messages.contains("WATCHDOG=1"))
        #expect(messages.contains("STOPPING=1"))
        #expect(messages.range(of: "READY=1")!.lowerBound < messages.range(of: "STOPPING=1")!.lowerBound)
    }

    @Test("files dropped into a watched directory while it runs: a bad one is recorded and skipped, a good one is learned from")
    func dropWhileRunning() throws {
        let ws = try RunCommandTests.Workspace(clips: ["video_only.mp4"], extraConfig: "[sources]\nsettle_seconds = 0.5")
        defer { removeTemporaryDirectory(ws.root) }
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments(["--epochs", "3"]), logDirectory: ws.root, name: "drop")
        #expect(daemon.waitForStatus(in: ws.state, seconds: 120) { $0.filesOK >= 1 && $0.step >= 0 })
        // Written in place (a partial copy first, then the rest): taken only once it stops growing.
        try Data("this is no video".utf8).write(to: ws.media.appendingPathComponent("dropped.mp4"))
        try FileManager.default.copyItem(atPath: sampleClip("h264_aac.mp4"), toPath: ws.media.appendingPathComponent("new.mp4").path)
        #expect(daemon.waitFor(seconds: 60) { $0.contains("bad file skipped") && $0.contains("dropped.mp4") })
        #expect(daemon.waitForStatus(in: ws.state, seconds: 120) { $0.filesOK >= 2 && $0.filesBad >= 1 })
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 60)?.status == 0)
        let s = try jsonObject(try #require(daemon.stdout.split(separator: "\n").last))
        #expect((s["files"] as? [String: Int]) == ["ok": 2, "bad": 1, "failed": 0])
        #expect(ws.ledger.contains("dropped.mp4") && ws.ledger.contains("\"status\":\"bad\""))
    }

    @Test("SIGKILL at random moments, 10 cycles: every checkpoint left behind loads and the daemon resumes each time")
    func killCycles() throws {
        let ws = try RunCommandTests.Workspace(clips: ["h264_aac.mp4", "vp9_opus.webm"], extraConfig: "[checkpoint]\nevery = 0.3\nkeep = 4")
        defer { removeTemporaryDirectory(ws.root) }
        var rng = SystemRandomNumberGenerator()
        var lastStep = -1
        for cycle in 0..<10 {
            let daemon = try DaemonProcess(try daemonBinary(), ws.arguments(["--epochs", "1000"]), logDirectory: ws.root, name: "kill\(cycle)")
            // Let it start (and resume) and make progress past the last checkpoint (a loaded machine
            // or a sanitizer build may take seconds per step), then kill at a random moment:
            // checkpoints follow each other every 0.3 s, so some kills land mid-write.
            #expect(daemon.waitForStatus(in: ws.state, seconds: 180) { $0.step > max(lastStep, 0) })
            usleep(UInt32.random(in: 0...1_500_000, using: &rng))
            daemon.signal(SIGKILL)
            #expect(daemon.wait(seconds: 10)?.signalled == true)
            if cycle > 0 && lastStep >= 0 {
                #expect(daemon.stderr.contains("resumed"), "cycle \(cycle) did not resume")
            }
            let checkpoints = (try? FileManager.default.contentsOfDirectory(atPath: ws.state.appendingPathComponent("checkpoints").path)) ?? []
            for name in checkpoints where name.hasSuffix(".safetensors") {
                let path = ws.state.appendingPathComponent("checkpoints/\(name)").path
                let inspect = try run(try daemonBinary(), ["inspect", path])
                #expect(inspect.status == 0, "cycle \(cycle): \(name) does not load: \(inspect.stderr)")
            }
            let newest = try run(try daemonBinary(), ["inspect", ws.state.path])
            if newest.status == 0, let step = try jsonObject(Substring(newest.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))["step"] as? Int {
                #expect(step >= lastStep, "the step count went back from \(lastStep) to \(step)")
                lastStep = step
            }
        }
        #expect(lastStep > 0, "no checkpoint survived ten cycles")
    }

    @Test("SIGTERM at a random moment, 20 runs: each prints its summary and is gone within the grace time")
    func sigtermAnyMoment() throws {
        let grace = 20.0
        let ws = try RunCommandTests.Workspace(clips: ["h264_aac.mp4", "video_only.mp4"], topLevel: "grace_seconds = \(grace)", extraConfig: "[checkpoint]\nevery = 0.5")
        defer { removeTemporaryDirectory(ws.root) }
        var rng = SystemRandomNumberGenerator()
        for cycle in 0..<20 {
            let daemon = try DaemonProcess(try daemonBinary(), ws.arguments(["--epochs", "1000"]), logDirectory: ws.root, name: "term\(cycle)")
            // From the first instant (parsing, resuming) to well into training.
            usleep(UInt32.random(in: 0...4_000_000, using: &rng))
            let sent = monotonicSeconds()
            daemon.signal(SIGTERM)
            let ended = daemon.wait(seconds: grace + 10)
            let took = monotonicSeconds() - sent
            #expect(ended?.status == 0 && ended?.signalled == false, "cycle \(cycle): \(String(describing: ended)) \(daemon.stderr.suffix(1500))")
            #expect(took <= grace, "cycle \(cycle): took \(took) s")
            let summary = try? jsonObject(Substring(daemon.stdout.split(separator: "\n").last ?? ""))
            #expect(summary?["steps"] is Int, "cycle \(cycle): no summary line: \(daemon.stdout.suffix(500))")
            #expect(summary?["checkpoint_error"] == nil || summary?["checkpoint_error"] is NSNull)
        }
    }
}

enum LiveStreamArguments {
    static func server(to url: String) -> [String] {
        [
            "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=600",
            "-f", "lavfi", "-i", "sine=f=440:duration=600",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
            "-c:a", "aac", "-f", "mpegts", url,
        ]
    }
}
