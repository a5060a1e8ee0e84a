import Foundation
import Glibc
import Testing
import TestSupport

/// The daemon against a real server of every live protocol on 127.0.0.1 (`LiveServer`): it
/// consumes the stream, survives a stall and a restart of the server, backs off when the server is
/// gone, refuses to hammer a server that rejects its credentials, and never prints a secret.
@Suite("Live sources: every protocol end to end", .serialized, .timeLimit(.minutes(20)))
struct LiveSourceTests {
    static let grace = 20.0
    /// Short timings so each phase takes seconds: a stall is declared after 3 s without a frame
    /// (connecting included), a single read may block 6 s, reconnects wait 0.3 s doubling to 1.5 s.
    static let sources = """
        [sources]
        live_timeout = 6.0
        stall_seconds = 3.0
        backoff_initial = 0.3
        backoff_max = 1.5
        backoff_reset_after = 1.0
        """

    static func workspace(streams: String) throws -> RunCommandTests.Workspace {
        try RunCommandTests.Workspace(clips: [], topLevel: "grace_seconds = \(grace)", extraConfig: sources + "\n" + streams)
    }

    /// Log lines that contain every one of `needles`.
    static func lines(_ log: String, _ needles: String...) -> [Substring] {
        log.split(separator: "\n").filter { line in needles.allSatisfy { line.contains($0) } }
    }

    /// The `in_seconds` of each "reconnecting" line of source `name`.
    static func reconnectDelays(_ log: String, source name: String) -> [Double] {
        lines(log, "reconnecting", "source=\(name) ").compactMap { line in
            line.range(of: "in_seconds=").flatMap { r in Double(line[r.upperBound...].prefix { $0 == "." || $0.isNumber }) }
        }
    }

    /// The `in_seconds` of each "reconnecting" line of source `name` that follows a refusal
    /// (`unauthorized`), in log order: attempts before the server listened back off normally.
    static func delaysAfterRefusal(_ log: String, source name: String) -> [Double] {
        var refused = false, delays: [Double] = []
        for line in log.split(separator: "\n") where line.contains("source=\(name) ") {
            if line.contains("live source failed") {
                refused = line.contains("unauthorized")
            } else if line.contains("reconnecting"), refused, let r = line.range(of: "in_seconds=") {
                if let d = Double(line[r.upperBound...].prefix { $0 == "." || $0.isNumber }) { delays.append(d) }
            }
        }
        return delays
    }

    /// Stops the daemon with SIGTERM: it must exit 0 within the grace time and print its summary.
    static func stop(_ daemon: DaemonProcess, _ label: String) throws -> [String: Any] {
        let sent = monotonicSeconds()
        daemon.signal(SIGTERM)
        let ended = daemon.wait(seconds: grace + 20)
        let took = monotonicSeconds() - sent
        #expect(ended?.status == 0 && ended?.signalled == false, "\(label): \(String(describing: ended)) \(daemon.stderr.suffix(1500))")
        #expect(took <= grace, "\(label): shutdown took \(took) s")
        return try jsonObject(try #require(daemon.stdout.split(separator: "\n").last, "\(label): no summary"))
    }

    /// `secret` appears in nothing the daemon printed or wrote for people: logs, the summary,
    /// status.json, the checkpoints' config.
    static func expectNoSecret(_ secret: String, _ daemon: DaemonProcess, _ ws: RunCommandTests.Workspace, _ label: String) throws {
        #expect(!daemon.stderr.contains(secret), "\(label): the log shows the secret")
        #expect(!daemon.stdout.contains(secret), "\(label): stdout shows the secret")
        let status = (try? String(contentsOf: ws.state.appendingPathComponent("status.json"), encoding: .utf8)) ?? ""
        #expect(!status.contains(secret), "\(label): status.json shows the secret")
        let checkpoints = ws.state.appendingPathComponent("checkpoints")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? [] where name.hasSuffix(".safetensors") {
            let data = try Data(contentsOf: checkpoints.appendingPathComponent(name))
            let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let header = String(decoding: data.dropFirst(8).prefix(length), as: UTF8.self)
            #expect(header.contains("\"config\""), "\(label): \(name) has no config")
            #expect(!header.contains(secret), "\(label): \(name) keeps the secret in its config")
        }
    }

    @Test("consumed with all pair kinds; a stall, a server restart and a server gone for good; shutdown in time; no secret shown",
          arguments: LiveServer.Kind.allCases)
    func protocolLifecycle(kind: LiveServer.Kind) throws {
        let work = try makeTemporaryDirectory("ssl-live")
        defer { removeTemporaryDirectory(work) }
        let server = try LiveServer(kind, clip: try makeLiveClip(in: work), work: work)
        defer { server.kill() }
        let ws = try Self.workspace(streams: "[streams.cam]\nurl = \"\(server.url())\"\n" + server.streamOptions)
        defer { removeTemporaryDirectory(ws.root) }
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments([]), logDirectory: ws.root, name: "live")
        func status() -> DaemonStatus? { DaemonStatus(stateDirectory: ws.state) }
        func cam(_ s: DaemonStatus) -> LiveSourceStatus? { s.live("cam") }
        func logged(_ needle: String) -> Int { Self.lines(daemon.stderr, needle, "source=cam ").count }

        // 1. Consumed: frames, pairs of all three kinds, training.
        let consumed = daemon.waitForStatus(in: ws.state, seconds: 120) { s in
            s.step >= 10 && cam(s)?.connected == true && s.pairs["temporal", default: 0] > 0
                && s.pairs["tracked", default: 0] > 0 && s.pairs["audio_video", default: 0] > 0
        }
        #expect(consumed, "\(kind): not consumed: \(status()?.json ?? [:]) \(daemon.stderr.suffix(1500))")
        guard consumed else { return }

        // 2. Stall: the server keeps its sockets and sends nothing; the daemon notices within
        // stall_seconds and reconnects once the server sends again.
        let connections = cam(status()!)!.connections
        server.pause()
        #expect(daemon.waitFor(seconds: 30) { _ in logged("live source stalled") > 0 }, "\(kind): stall not detected: \(daemon.stderr.suffix(1500))")
        server.resume()
        #expect(daemon.waitForStatus(in: ws.state, seconds: 60) { s in (cam(s)?.connections ?? 0) > connections && cam(s)?.connected == true },
                "\(kind): no reconnect after the stall: \(daemon.stderr.suffix(1500))")

        // 3. Restart: the server dies and comes back on the same port; the daemon reconnects,
        // reports how long the stream was gone, and keeps training.
        let beforeRestart = status()!
        let reconnects = logged("reconnecting")
        server.kill()
        #expect(daemon.waitFor(seconds: 30) { _ in logged("reconnecting") > reconnects }, "\(kind): the loss went unnoticed")
        try server.start()
        let recovered = daemon.waitForStatus(in: ws.state, seconds: 90) { s in
            (cam(s)?.connections ?? 0) > cam(beforeRestart)!.connections && cam(s)?.connected == true && (cam(s)?.frames ?? 0) > cam(beforeRestart)!.frames
        }
        #expect(recovered, "\(kind): no recovery after the restart: \(daemon.stderr.suffix(1500))")
        #expect(daemon.waitFor(seconds: 10) { _ in logged("live source recovered") >= 2 }, "\(kind): recovery time not logged")
        #expect(status().flatMap { cam($0)?.lastRecoverySeconds }.map { $0 > 0 } == true, "\(kind): no recovery time in status.json")
        #expect(daemon.waitForStatus(in: ws.state, seconds: 90) { $0.step >= beforeRestart.step + 5 }, "\(kind): training stopped after the restart")

        // 4. Gone for good: attempts keep failing, each with a warning, the delay capped by
        // backoff_max (with its ±25 % jitter), and shutdown still within the grace time.
        let warningsBefore = logged("WARNING")
        server.kill()
        #expect(daemon.waitForStatus(in: ws.state, seconds: 60) { (cam($0)?.failedAttempts ?? 0) >= 3 }, "\(kind): \(daemon.stderr.suffix(1500))")
        #expect(logged("WARNING") - warningsBefore >= 3, "\(kind): a failed attempt without its warning")
        let delays = Self.reconnectDelays(daemon.stderr, source: "cam")
        #expect(!delays.isEmpty && delays.allSatisfy { $0 <= 1.5 * 1.25 + 0.05 }, "\(kind): delays \(delays)")
        #expect(status().flatMap { cam($0)?.lastError } != nil)

        let summary = try Self.stop(daemon, "\(kind)")
        #expect((summary["steps"] as? Int ?? 0) >= beforeRestart.step + 5)
        try Self.expectNoSecret(server.secret, daemon, ws, "\(kind)")
    }

    @Test("servers that are not there, or accept and never answer: bounded attempts with warnings, shutdown within the grace time")
    func nothingThere() throws {
        let silent = try SilentTCPServer()
        var streams = ""
        for (name, url) in [
            ("rtsp", "rtsp://127.0.0.1:\(try freePort())/clip"), ("rtmp", "rtmp://127.0.0.1:\(try freePort())/live/cam"),
            ("srt", "srt://127.0.0.1:\(try freePort(udp: true))"), ("hls", "http://127.0.0.1:\(try freePort())/live.m3u8"),
            ("tcp", "tcp://127.0.0.1:\(try freePort())"), ("silent", "rtsp://127.0.0.1:\(silent.port)/clip"),
        ] {
            streams += "[streams.\(name)]\nurl = \"\(url)\"\n"
        }
        let ws = try Self.workspace(streams: streams)
        defer { removeTemporaryDirectory(ws.root) }
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments([]), logDirectory: ws.root, name: "absent")
        let names = ["rtsp", "rtmp", "srt", "hls", "tcp", "silent"]
        let failing = daemon.waitForStatus(in: ws.state, seconds: 90) { s in names.allSatisfy { (s.live($0)?.failedAttempts ?? 0) >= 2 } }
        #expect(failing, "\(DaemonStatus(stateDirectory: ws.state)?.live ?? []) \(daemon.stderr.suffix(2000))")
        let log = daemon.stderr
        for name in names {
            #expect(Self.lines(log, "WARNING", "source=\(name) ").count >= 2, "\(name): no warning per attempt")
            #expect(Self.lines(log, "live source connected", "source=\(name) ").isEmpty)
        }
        // The silent server accepts the connection and says nothing: the stall timer ends the
        // attempt while connecting.
        #expect(!Self.lines(log, "live source stalled", "source=silent ", "phase=connecting").isEmpty, "\(log.suffix(2000))")
        _ = try Self.stop(daemon, "nothing there")
    }

    @Test("a wrong RTSP password and a missing HLS header: 'unauthorized', retried only every backoff_max, never printed")
    func refusedCredentials() throws {
        let work = try makeTemporaryDirectory("ssl-live")
        defer { removeTemporaryDirectory(work) }
        let clip = try makeLiveClip(in: work, seconds: 30)
        let rtsp = try LiveServer(.rtspTCP, clip: clip, work: work)
        let hls = try LiveServer(.hls, clip: clip, work: work)
        defer { rtsp.kill(); hls.kill() }
        let wrong = "wrong-password-7731"
        let ws = try Self.workspace(streams: """
            [streams.door]
            url = "\(rtsp.url(password: wrong))"
            rtsp_transport = "tcp"
            [streams.feed]
            url = "\(hls.url())"
            """)
        defer { removeTemporaryDirectory(ws.root) }
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments([]), logDirectory: ws.root, name: "refused")
        let refused = daemon.waitFor(seconds: 90) { log in
            ["door", "feed"].allSatisfy { Self.delaysAfterRefusal(log, source: $0).count >= 2 }
        }
        #expect(refused, "\(daemon.stderr.suffix(2000))")
        let log = daemon.stderr
        #expect(!Self.lines(log, "source=door ", "hint=the server refused the credentials").isEmpty)
        // After a refusal the wait is backoff_max (1.5 s ± 25 %), not the 0.3 s a first failure gets.
        for name in ["door", "feed"] {
            let delays = Self.delaysAfterRefusal(log, source: name)
            #expect(delays.count >= 2 && delays.allSatisfy { $0 >= 1.5 * 0.75 - 0.05 }, "\(name): delays \(delays)")
        }
        _ = try Self.stop(daemon, "refused")
        try Self.expectNoSecret(wrong, daemon, ws, "refused")
        #expect(!daemon.stderr.contains(rtsp.secret))
    }

    @Test("stdin: a piped stream is consumed; when it ends the source is finished and the daemon keeps running until SIGTERM")
    func stdinStream() throws {
        let work = try makeTemporaryDirectory("ssl-live")
        defer { removeTemporaryDirectory(work) }
        let clip = try makeLiveClip(in: work, seconds: 8)
        let ts = work.appendingPathComponent("clip.ts")
        try ffmpeg(["-i", clip, "-c", "copy", "-f", "mpegts", ts.path])
        let ws = try Self.workspace(streams: "")
        defer { removeTemporaryDirectory(ws.root) }
        let daemon = try DaemonProcess(try daemonBinary(), ws.arguments(["--stream", "-"]), logDirectory: ws.root, name: "stdin", stdin: ts)
        #expect(daemon.waitFor(seconds: 90) { $0.contains("stdin is done") }, "\(daemon.stderr.suffix(1500))")
        // status.json is rewritten every second: wait for it to show what was read.
        let consumed = daemon.waitForStatus(in: ws.state, seconds: 30) { s in
            // 8 s at decode.fps = 8.
            (s.live("live-0")?.frames ?? 0) >= 60 && s.pairs["temporal", default: 0] > 0 && s.pairs["audio_video", default: 0] > 0
        }
        #expect(consumed, "\(DaemonStatus(stateDirectory: ws.state)?.json ?? [:])")
        #expect(Self.lines(daemon.stderr, "reconnecting").isEmpty, "stdin cannot be reopened")
        #expect(daemon.waitForStatus(in: ws.state, seconds: 60) { $0.step >= 5 })
        #expect(daemon.isRunning)
        _ = try Self.stop(daemon, "stdin")
    }
}
