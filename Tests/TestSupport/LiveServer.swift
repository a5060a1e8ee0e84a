import Foundation
import Glibc

/// A real live-stream server on 127.0.0.1 for one protocol (`Tests/LiveServers/serve.sh`): GStreamer's
/// RTSP server, nginx's RTMP module, FFmpeg's SRT and TCP listeners, an HLS writer behind an
/// HTTP server, or an FFmpeg UDP sender. Its processes run in a session of their own, so
/// `pause()`, `resume()` and `kill()` reach all of them at once; the deinit kills them.
public final class LiveServer: @unchecked Sendable {
    public enum Kind: String, CaseIterable, Sendable, CustomStringConvertible {
        case udp, tcp, rtspTCP = "rtsp-tcp", rtspUDP = "rtsp-udp", rtmp, srt, hls

        public var description: String { rawValue }
        /// serve.sh's protocol name.
        var protocolName: String {
            switch self {
            case .rtspTCP, .rtspUDP: "rtsp"
            default: rawValue
            }
        }
        var udpPort: Bool { self == .udp || self == .srt }
    }

    public let kind: Kind
    public let port: Int
    /// The password, passphrase or header value the server requires (a secret tests look for).
    public let secret: String
    private let clip: String
    private let work: URL
    private var pid: pid_t = 0
    private var starts = 0

    /// Picks a free port and starts serving `clip`; `secret` must be 10 to 79 characters (SRT).
    public init(_ kind: Kind, clip: String, work: URL, secret: String = "s3cret-pass-42") throws {
        self.kind = kind
        self.clip = clip
        self.work = work.appendingPathComponent("server-\(kind.rawValue)")
        self.secret = secret
        port = try freePort(udp: kind.udpPort)
        try start()
    }

    /// The URL the daemon reads, with credentials where the protocol carries them in the URL.
    public func url(password: String? = nil) -> String {
        switch kind {
        case .udp: "udp://127.0.0.1:\(port)"
        case .tcp: "tcp://127.0.0.1:\(port)"
        case .rtspTCP, .rtspUDP: "rtsp://viewer:\(password ?? secret)@127.0.0.1:\(port)/clip"
        case .rtmp: "rtmp://127.0.0.1:\(port)/live/cam"
        case .srt: "srt://127.0.0.1:\(port)"
        case .hls: "http://127.0.0.1:\(port)/live.m3u8"
        }
    }

    /// The `[streams.NAME]` options this server needs besides the URL (transport, passphrase,
    /// header), as TOML lines.
    public var streamOptions: String {
        switch kind {
        case .rtspTCP: "rtsp_transport = \"tcp\"\n"
        case .rtspUDP: "rtsp_transport = \"udp\"\n"
        case .srt: "srt_passphrase = \"\(secret)\"\nsrt_latency = 0.2\n"
        case .hls: "http_headers = [\"X-Token: \(secret)\"]\n"
        default: ""
        }
    }

    /// Starts the server (again, after `kill()`), on the same port.
    public func start() throws {
        precondition(pid == 0, "already running")
        starts += 1
        let log = work.path + "-\(starts).log"
        let script = repositoryRoot.appendingPathComponent("Tests/LiveServers/serve.sh").path
        pid = try spawnSession(["/bin/bash", script, kind.protocolName, String(port), clip, work.path, secret], log: log)
    }

    /// SIGSTOP to every process: the server keeps its sockets open and sends nothing (a stall).
    public func pause() { if pid > 0 { killpg(pid, SIGSTOP) } }
    public func resume() { if pid > 0 { killpg(pid, SIGCONT) } }

    /// SIGKILL to every process, as when the machine serving dies; waits for the session leader.
    public func kill() {
        guard pid > 0 else { return }
        killpg(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
        // Orphans of the group die with the same signal; give the kernel a moment to free ports.
        usleep(200_000)
    }

    deinit { kill() }
}

/// A clip for live servers: H.264 + AAC in Matroska, 320×240 at 25 fps, a keyframe every second,
/// `seconds` long, made with the ffmpeg CLI.
public func makeLiveClip(in directory: URL, seconds: Int = 60) throws -> String {
    let path = directory.appendingPathComponent("live-clip.mkv").path
    try ffmpeg([
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=\(seconds)",
        "-f", "lavfi", "-i", "sine=f=440:duration=\(seconds):sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-crf", "32",
        "-c:a", "aac", "-b:a", "64k", path,
    ])
    return path
}

/// Starts `arguments` in a new session (so its process group id is its pid), with stdin from
/// /dev/null and stdout and stderr appended to `log`. posix_spawn with POSIX_SPAWN_SETSID.
func spawnSession(_ arguments: [String], log: String) throws -> pid_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // POSIX_SPAWN_SETSID (glibc >= 2.26; a GNU extension Swift's Glibc module does not export).
    posix_spawnattr_setflags(&attributes, 0x80)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let status = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
    guard status == 0 else { throw TestFailure("posix_spawn \(arguments[0]): \(String(cString: strerror(status)))") }
    return pid
}
