import Foundation
import Glibc
import Testing
import TestSupport

/// The HTTP endpoint, TensorBoard logs, health signals and progress output of a running daemon,
/// checked with the clients operators use: Python's prometheus_client and tensorboard, a headless
/// Chromium, raw sockets.
@Suite("Observability", .timeLimit(.minutes(20)))
struct ObservabilityTests {
    static var python: String { repositoryRoot.appendingPathComponent(".venv/bin/python").path }
    static func script(_ name: String) -> String { repositoryRoot.appendingPathComponent("Tests/EndToEndTests/Python/\(name)").path }

    /// A daemon over a few sample clips (read many times, so it keeps training) with monitor
    /// settings that make every signal appear within seconds.
    static func workspace(every: Int = 2, monitor: String = "", clips: [String] = ["h264_aac.mp4", "vp9_opus.webm"]) throws -> RunCommandTests.Workspace {
        try RunCommandTests.Workspace(clips: clips, extraConfig: """
            [sources]
            epochs = 1000
            live_timeout = 2.0
            [monitor]
            every = \(every)
            rank_every = 5
            retrieval_every = 2.0
            \(monitor)
            """)
    }

    static func endpoint(_ daemon: DaemonProcess, _ ws: RunCommandTests.Workspace) throws -> (host: String, port: Int, url: String) {
        var address: String?
        _ = daemon.waitForStatus(in: ws.state, seconds: 120) { s in
            address = s.json["http"] as? String
            return address != nil
        }
        let a = try #require(address, "no http address in status.json: \(daemon.stderr.suffix(1500))")
        let colon = try #require(a.lastIndex(of: ":"))
        return (String(a[..<colon]), Int(a[a.index(after: colon)...]) ?? 0, "http://\(a)")
    }

    static func get(_ url: String) throws -> Data {
        let r = try run("/usr/bin/curl", ["-sf", "--max-time", "20", url])
        guard r.status == 0 else { throw TestFailure("GET \(url): curl exit \(r.status)") }
        return Data(r.stdout.utf8)
    }

    static func status(_ base: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: get(base + "/api/status")) as? [String: Any])
    }

    @Test("/metrics passes prometheus_client's parser and the naming conventions; /api/status, the status page in Chromium, `status`; dropped frames match the summary")
    func metricsPageAndStatus() throws {
        let ws = try Self.workspace()
        defer { removeTemporaryDirectory(ws.root) }
        let port = try freePort(udp: true)
        let url = "udp://127.0.0.1:\(port)"
        var server: BackgroundProcess? = try BackgroundProcess("ffmpeg", LiveStreamArguments.server(to: "\(url)?pkt_size=1316"))
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments(["--stream", url]), logDirectory: ws.root, name: "observed")
        let (_, _, base) = try Self.endpoint(daemon, ws)
        #expect(daemon.waitForStatus(in: ws.state, seconds: 240) { s in
            let training = s.json["training"] as? [String: Any]
            return s.step >= 12 && training?["effective_rank"] != nil && (s.live.first?["frames"] as? Int ?? 0) > 0
        }, "\(daemon.stderr.suffix(2000))")

        let conventions = try run(Self.python, [Self.script("check_metrics.py"), "conventions", base])
        #expect(conventions.status == 0, "\(conventions.stdout)\(conventions.stderr)")

        // The same state as one JSON document, with history and the retrieval panel.
        var status = try Self.status(base)
        let training = try #require(status["training"] as? [String: Any])
        #expect(training["collapse"] as? Bool == false, "\(training)")
        #expect((training["std_ratio"] as? Double ?? 0) > 0)
        #expect((training["chance_loss"] as? Double ?? 0) > 1)
        #expect(((status["history"] as? [[String: Any]]) ?? []).count >= 3)
        for _ in 0..<60 where status["retrieval"] == nil {
            sleep(1)
            status = try Self.status(base)
        }
        let retrieval = try #require(status["retrieval"] as? [String: Any], "no retrieval panel")
        #expect(((retrieval["queries"] as? [[String: Any]]) ?? []).first.map { ($0["neighbours"] as? [Any])?.isEmpty == false } == true)
        #expect((status["live"] as? [[String: Any]])?.first?["name"] as? String == "live-0")

        // A real browser renders the page; look at the screenshot.
        let dom = try run("/usr/bin/chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", base + "/"])
        #expect(dom.status == 0, "\(dom.stderr.suffix(800))")
        for needle in ["ssl-daemon", "<svg", "contrastive accuracy", "effective rank", "Nearest neighbours", "data:image/png;base64,", "live-0", "Checkpoint", "no collapse"] {
            #expect(dom.stdout.contains(needle), "page lacks \(needle)")
        }
        let shot = ProcessInfo.processInfo.environment["SSL_SCREENSHOT"] ?? ws.root.appendingPathComponent("status.png").path
        let screenshot = try run("/usr/bin/chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1500",
                                                       "--screenshot=\(shot)", base + "/"])
        #expect(screenshot.status == 0, "\(screenshot.stderr.suffix(800))")
        let png = try Data(contentsOf: URL(fileURLWithPath: shot))
        #expect(png.count > 20_000 && png.starts(with: [0x89, 0x50, 0x4E, 0x47]))

        let human = try run(try daemonBinary(), ["status", "--url", base])
        #expect(human.status == 0 && human.stdout.contains("step") && human.stdout.contains("live-0") && human.stdout.contains("files:"), "\(human.stdout)\(human.stderr)")

        // Dropped frames: stop the stream, let the counters settle, then compare with the summary.
        server?.kill()
        server = nil
        sleep(4)
        let dropped = try run(Self.python, [Self.script("check_metrics.py"), "value", base, "ssl_source_dropped_frames"])
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 90)?.status == 0)
        let summary = try jsonObject(try #require(daemon.stdout.split(separator: "\n").last))
        let fromMetrics = Double(dropped.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(Int(fromMetrics) == summary["dropped_frames"] as? Int, "metrics \(dropped.stdout) vs summary \(summary)")
    }

    @Test("TensorBoard reads back every scalar with its step and exact value, also after a SIGKILL mid-run")
    func tensorboardAfterKill() throws {
        let ws = try Self.workspace(every: 1)
        defer { removeTemporaryDirectory(ws.root) }
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments([]), logDirectory: ws.root, name: "tb")
        let (_, _, base) = try Self.endpoint(daemon, ws)
        #expect(daemon.waitForStatus(in: ws.state, seconds: 240) { $0.step >= 25 }, "\(daemon.stderr.suffix(2000))")
        let history = try #require(try Self.status(base)["history"] as? [[String: Any]])
        daemon.signal(SIGKILL)
        _ = daemon.wait(seconds: 30)
        let read = try run(Self.python, [Self.script("read_tensorboard.py"), ws.state.appendingPathComponent("tensorboard").path])
        #expect(read.status == 0, "\(read.stderr.suffix(2000))")
        let out = try jsonObject(Substring(read.stdout))
        let scalars = try #require(out["scalars"] as? [String: [[Double]]])
        var compared = 0
        for record in history {
            guard let step = record["step"] as? Int, let values = record["values"] as? [String: Double] else { continue }
            for (tag, value) in values {
                let points = scalars[tag] ?? []
                guard let point = points.first(where: { Int($0[0]) == step }) else { continue }
                #expect(Float(point[1]) == Float(value), "\(tag) at step \(step): tensorboard \(point[1]), status \(value)")
                compared += 1
            }
        }
        // Everything up to shortly before the kill is on disk (only the queue's last records may be lost).
        #expect(compared >= 20 * 5, "compared only \(compared) values")
        #expect((scalars["loss/total"] ?? []).count >= 20)
    }

    @Test("loopback by default; oversized headers, traversal and other methods get clean errors and change nothing; /healthz says 503 when the trainer is past stuck_seconds")
    func hostileRequests() throws {
        let printed = try run(try daemonBinary(), ["run", "--print-config"])
        #expect(printed.stdout.contains("listen = \"127.0.0.1:9741\""), "\(printed.stdout.prefix(400))")
        let ws = try Self.workspace(monitor: "stuck_seconds = 0.05")
        defer { removeTemporaryDirectory(ws.root) }
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments([]), logDirectory: ws.root, name: "hostile")
        let (host, port, base) = try Self.endpoint(daemon, ws)
        #expect(host == "127.0.0.1")
        // The kernel's view: listening on 127.0.0.1 only.
        let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
        let local = String(format: "0100007F:%04X", port)
        #expect(table.split(separator: "\n").contains { $0.contains(local) && $0.contains(" 0A ") }, "no LISTEN entry \(local)")
        #expect(daemon.waitForStatus(in: ws.state, seconds: 240) { $0.step >= 3 })
        let before = try Self.status(base)
        let probe = try run(Self.python, [Self.script("http_probe.py"), "hostile", host, String(port)])
        #expect(probe.status == 0, "\(probe.stderr)")
        let r = try jsonObject(Substring(probe.stdout))
        #expect((r["oversized_header"] as? String)?.hasPrefix("HTTP/1.1 400") == true, "\(r)")
        #expect((r["too_many_headers"] as? String)?.hasPrefix("HTTP/1.1 400") == true, "\(r)")
        for key in ["traversal", "encoded_traversal", "absolute", "state_file"] {
            #expect((r[key] as? String)?.hasPrefix("HTTP/1.1 404") == true, "\(key): \(r)")
            #expect(r[key + "_leak"] as? Bool == false)
        }
        for method in ["POST", "PUT", "DELETE", "PATCH"] { #expect((r[method] as? String)?.hasPrefix("HTTP/1.1 405") == true, "\(method): \(r)") }
        #expect((r["garbage"] as? String)?.hasPrefix("HTTP/1.1 400") == true, "\(r)")
        #expect((r["after"] as? String)?.hasPrefix("HTTP/1.1") == true, "the endpoint stopped answering: \(r)")
        let after = try Self.status(base)
        #expect((after["step"] as? Int ?? 0) >= (before["step"] as? Int ?? 0))
        #expect(after["checkpoint_failures"] as? Int == 0 && daemon.isRunning)
        // With stuck_seconds shorter than the trainer's waits, /healthz answers 503 (and 200 otherwise, see the idle test).
        var saw503 = false
        for _ in 0..<200 where !saw503 {
            let code = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", base + "/healthz"])
            saw503 = code.stdout == "503"
            usleep(50_000)
        }
        #expect(saw503)
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 90)?.status == 0)
    }

    @Test("200 idle connections and a slow reader do not stall training; /healthz keeps answering 200")
    func slowClients() throws {
        let ws = try Self.workspace()
        defer { removeTemporaryDirectory(ws.root) }
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments([]), logDirectory: ws.root, name: "idle")
        let (host, port, _) = try Self.endpoint(daemon, ws)
        #expect(daemon.waitForStatus(in: ws.state, seconds: 240) { $0.step >= 3 })
        let start = DaemonStatus(stateDirectory: ws.state)?.step ?? 0
        let probe = try run(Self.python, [Self.script("http_probe.py"), "idle", host, String(port), "20"])
        #expect(probe.status == 0, "\(probe.stderr)")
        let r = try jsonObject(Substring(probe.stdout))
        let end = DaemonStatus(stateDirectory: ws.state)?.step ?? 0
        #expect(end >= start + 3, "steps \(start) → \(end) while clients held connections")
        #expect(r["healthz_failed"] as? Int == 0 && (r["healthz_ok"] as? Int ?? 0) >= 10, "\(r)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 90)?.status == 0)
    }

    @Test("kNN monitor: a labelled folder gives an accuracy in /api/status, /metrics and TensorBoard")
    func knnMonitor() throws {
        let labelled = try makeTemporaryDirectory("ssl-labelled")
        defer { removeTemporaryDirectory(labelled) }
        let generated = try run("/bin/bash", [repositoryRoot.appendingPathComponent("samples/generate_labelled.sh").path, labelled.path, "2", "3"])
        #expect(generated.status == 0, "\(generated.stderr)")
        let classes = labelled.appendingPathComponent("classes")
        let rows = try String(contentsOf: labelled.appendingPathComponent("labels.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
        for row in rows {
            let parts = row.split(separator: ",").map(String.init)
            let folder = classes.appendingPathComponent(parts[1])
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent(parts[0]).path, withDestinationPath: labelled.appendingPathComponent(parts[0]).path)
        }
        try "not a video".write(to: classes.appendingPathComponent("pulse/broken.mp4"), atomically: true, encoding: .utf8)
        let ws = try Self.workspace(monitor: "labelled = \"\(classes.path)\"\nknn_every = 4\nknn_k = 3")
        defer { removeTemporaryDirectory(ws.root) }
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments([]), logDirectory: ws.root, name: "knn")
        let (_, _, base) = try Self.endpoint(daemon, ws)
        var accuracy: Double?
        #expect(daemon.waitForStatus(in: ws.state, seconds: 300) { s in
            accuracy = (s.json["training"] as? [String: Any])?["knn_accuracy"] as? Double
            return accuracy != nil && s.step >= 10
        }, "\(daemon.stderr.suffix(2000))")
        #expect(accuracy.map { (0...1).contains($0) } == true)
        #expect(daemon.stderr.contains("broken.mp4"), "the undecodable labelled file is not named")
        let metric = try run(Self.python, [Self.script("check_metrics.py"), "value", base, "ssl_knn_accuracy_ratio"])
        #expect((Double(metric.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1) >= 0, "\(metric.stdout)\(metric.stderr)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 90)?.status == 0)
        let read = try run(Self.python, [Self.script("read_tensorboard.py"), ws.state.appendingPathComponent("tensorboard").path])
        let scalars = try #require(try jsonObject(Substring(read.stdout))["scalars"] as? [String: [[Double]]])
        #expect(!(scalars["knn/accuracy"] ?? []).isEmpty, "\(scalars.keys)")
    }

    @Test("the collapse alarm reaches the log, /metrics, the status page, status.json and systemd's STATUS=")
    func collapseAlarmEverywhere() throws {
        // A threshold no embedding can meet (the std ratio is at most about 1): the plumbing is
        // under test here; HealthTests shows which encoders raise it at the default thresholds.
        let ws = try Self.workspace(monitor: "collapse_std_ratio = 10.0\ncollapse_steps = 3")
        defer { removeTemporaryDirectory(ws.root) }
        let listener = try DatagramListener(path: ws.root.appendingPathComponent("notify.sock").path)
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments([]), environment: ["NOTIFY_SOCKET": listener.path],
                                       logDirectory: ws.root, name: "collapse")
        let (_, _, base) = try Self.endpoint(daemon, ws)
        #expect(daemon.waitForStatus(in: ws.state, seconds: 240) { ($0.json["training"] as? [String: Any])?["collapse"] as? Bool == true },
                "\(daemon.stderr.suffix(1500))")
        #expect(daemon.stderr.contains("collapse alarm"))
        let metric = try run(Self.python, [Self.script("check_metrics.py"), "value", base, "ssl_collapse_alarm"])
        #expect(metric.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1.0", "\(metric.stdout)\(metric.stderr)")
        let page = String(decoding: try Self.get(base + "/"), as: UTF8.self)
        #expect(page.contains("collapse alarm") && page.contains("std ratio"), "\(page.prefix(1500))")
        let human = try run(try daemonBinary(), ["status", "--state-dir", ws.state.path])
        #expect(human.stdout.contains("COLLAPSE ALARM"), "\(human.stdout)")
        usleep(2_500_000)
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 90)?.status == 0)
        usleep(300_000)
        #expect(listener.messages.contains { $0.contains("STATUS=") && $0.contains("COLLAPSE ALARM") }, "\(listener.messages.suffix(5))")
    }

    @Test("run --once draws a progress bar of its files on a terminal; logs and pipes stay clean")
    func runOnceProgress() throws {
        let ws = try RunCommandTests.Workspace(clips: ["h264_aac.mp4", "video_only.mp4"])
        defer { removeTemporaryDirectory(ws.root) }
        let command = ([try daemonBinary()] + ws.arguments(["--once"])).map { "'\($0)'" }.joined(separator: " ")
        let tty = try run("/usr/bin/script", ["-qec", command, "/dev/null"])
        #expect(tty.status == 0, "\(tty.stdout.suffix(800))")
        #expect(tty.stdout.contains("files [") && tty.stdout.contains("2/2"), "\(tty.stdout.suffix(800))")
        let piped = try run(try daemonBinary(), ws.arguments(["--once"]).map { $0 == ws.state.path ? ws.root.appendingPathComponent("state2").path : $0 })
        #expect(piped.status == 0 && !piped.stderr.contains("\u{1B}[2K") && !piped.stderr.contains("files ["), "\(piped.stderr.suffix(800))")
    }

    @Test("probe over many inputs draws a progress bar on a terminal and nothing extra on a pipe")
    func progressOnTerminal() throws {
        let clips = ["h264_aac.mp4", "vp9_opus.webm", "mpeg4_mp3.mkv", "video_only.mp4"].map(sampleClip)
        let command = ([try daemonBinary(), "probe"] + clips).map { "'\($0)'" }.joined(separator: " ")
        let tty = try run("/usr/bin/script", ["-qec", command, "/dev/null"])
        #expect(tty.status == 0)
        #expect(tty.stdout.contains("probe [") && tty.stdout.contains("4/4") && tty.stdout.contains("files/s"), "\(tty.stdout.suffix(600))")
        let piped = try run(try daemonBinary(), ["probe"] + clips)
        #expect(piped.status == 0 && piped.stderr.isEmpty, "\(piped.stderr)")
        #expect(piped.stdout.split(separator: "\n").count == 4)
    }
}
