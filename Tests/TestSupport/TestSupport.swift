import Foundation
import Glibc

/// The repository root, found from this file's location.
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A bundled sample clip under samples/clips/.
public func sampleClip(_ name: String) -> String {
    repositoryRoot.appendingPathComponent("samples/clips/\(name)").path
}

public struct ProcessResult: Sendable {
    public var status: Int32
    /// True when the process ended by a signal rather than exit().
    public var signalled: Bool
    public var stdout: String
    public var stderr: String
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a program to completion, capturing its output. `stdin` names a file to feed it, otherwise
/// it reads /dev/null.
@discardableResult
public func run(_ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], directory: String? = nil) throws -> ProcessResult {
    let process = Process()
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = try stdin.map { try FileHandle(forReadingFrom: URL(fileURLWithPath: $0)) } ?? FileHandle.nullDevice
    try process.run()
    // Read both pipes concurrently so a chatty child never blocks on a full pipe.
    let errData = LockedData()
    let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while !errData.isSet { usleep(1000) }
    return ProcessResult(
        status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
        stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData.value, as: UTF8.self))
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return data != nil }
    var value: Data { lock.lock(); defer { lock.unlock() }; return data ?? Data() }
}

/// Runs the ffmpeg CLI quietly; throws with its stderr when it fails.
public func ffmpeg(_ arguments: [String]) throws {
    let result = try run("ffmpeg", ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + arguments)
    if result.status != 0 { throw TestFailure("ffmpeg \(arguments.joined(separator: " ")) failed: \(result.stderr)") }
}

/// A fresh directory under the system temp dir; remove it with `removeTemporaryDirectory`.
public func makeTemporaryDirectory(_ label: String = "ssl-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

public func removeTemporaryDirectory(_ url: URL) { try? FileManager.default.removeItem(at: url) }

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back, close).
public func freePort(udp: Bool = false) throws -> Int {
    let fd = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TestFailure("bind: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A TCP listener on 127.0.0.1 that accepts connections (via the kernel backlog) and never sends:
/// a dead server. Closed on deinit.
public final class SilentTCPServer {
    public let port: Int
    private let fd: Int32

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else {
            throw TestFailure("silent server: \(String(cString: strerror(errno)))")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}

/// A background `ffmpeg` process (e.g. a live stream server); terminated on `stop()` or deinit.
public final class BackgroundProcess: @unchecked Sendable {
    private let process = Process()

    public init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    public var isRunning: Bool { process.isRunning }

    /// SIGKILL, as when a server dies without closing anything cleanly.
    public func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { kill() }
}

/// Seconds on the monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Frame timestamps (seconds) of the first video stream according to ffprobe, and the container
/// start time, so tests compare against an independent reader.
public func ffprobeVideoTimestamps(_ path: String) throws -> (times: [Double], start: Double) {
    let frames = try run("ffprobe", [
        "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=best_effort_timestamp_time",
        "-of", "csv=p=0", path,
    ])
    let format = try run("ffprobe", ["-v", "error", "-show_entries", "format=start_time", "-of", "csv=p=0", path])
    guard frames.status == 0, format.status == 0 else { throw TestFailure("ffprobe failed on \(path): \(frames.stderr)") }
    let times = frames.stdout.split(whereSeparator: \.isNewline).compactMap { Double($0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: ","))) }
    return (times, Double(format.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0)
}

/// ffprobe's format duration in seconds.
public func ffprobeDuration(_ path: String) throws -> Double {
    let r = try run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path])
    guard let d = Double(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestFailure("no duration for \(path)") }
    return d
}

/// The built `ssl-daemon` binary: $SSL_DAEMON_BIN, else next to the test bundle (swift test builds
/// all products into the same folder), else .build/debug.
public func daemonBinary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["SSL_DAEMON_BIN"] { return path }
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ssl-daemon").path,
        repositoryRoot.appendingPathComponent(".build/debug/ssl-daemon").path,
    ]
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestFailure("ssl-daemon binary not found (tried \(candidates)); run `swift build` first")
    }
    return found
}

/// Parses one line of JSON into a dictionary.
public func jsonObject(_ line: Substring) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        throw TestFailure("not a JSON object: \(line)")
    }
    return object
}

/// A process running in the background with stdout and stderr going to files, for tests that
/// signal it (SIGTERM, SIGKILL) and read what it printed.
public final class DaemonProcess: @unchecked Sendable {
    private let process = Process()
    public let stdoutURL: URL
    public let stderrURL: URL

    /// `stdin`: a file whose bytes the process reads on standard input (default: /dev/null).
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], logDirectory: URL, name: String, stdin: URL? = nil) throws {
        stdoutURL = logDirectory.appendingPathComponent("\(name).out")
        stderrURL = logDirectory.appendingPathComponent("\(name).err")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = try stdin.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    public func signal(_ signal: Int32) { if process.isRunning { Glibc.kill(process.processIdentifier, signal) } }

    /// Waits up to `seconds` for exit; returns (status, killed by a signal) or nil on time-out.
    public func wait(seconds: Double) -> (status: Int32, signalled: Bool)? {
        let deadline = monotonicSeconds() + seconds
        while process.isRunning && monotonicSeconds() < deadline { usleep(50_000) }
        guard !process.isRunning else { return nil }
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal)
    }

    /// Waits until `predicate(stderr)` holds or `seconds` pass.
    public func waitFor(seconds: Double, _ predicate: (String) -> Bool) -> Bool {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if predicate(stderr) { return true }
            if !process.isRunning { return predicate(stderr) }
            usleep(100_000)
        }
        return false
    }

    /// Waits until the daemon's `status.json` in `stateDirectory` satisfies `predicate`, or
    /// `seconds` pass (or the process exits).
    public func waitForStatus(in stateDirectory: URL, seconds: Double, _ predicate: (DaemonStatus) -> Bool) -> Bool {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if let status = DaemonStatus(stateDirectory: stateDirectory), status.pid == pid, predicate(status) { return true }
            if !process.isRunning { return false }
            usleep(100_000)
        }
        return false
    }

    deinit {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A running daemon's `status.json` (the fields tests look at).
public struct DaemonStatus {
    public let json: [String: Any]
    public var pid: Int32 { (json["pid"] as? Int).map(Int32.init) ?? -1 }
    public var state: String { json["state"] as? String ?? "" }
    public var step: Int { json["step"] as? Int ?? -1 }
    public var filesOK: Int { (json["files"] as? [String: Int])?["ok"] ?? 0 }
    public var filesBad: Int { (json["files"] as? [String: Int])?["bad"] ?? 0 }
    /// Per live source: connected, connections, frames.
    public var live: [[String: Any]] { json["live"] as? [[String: Any]] ?? [] }
    /// The live source named `name` (its `[streams.NAME]`, or live-N).
    public func live(_ name: String) -> LiveSourceStatus? {
        live.first { $0["name"] as? String == name }.map(LiveSourceStatus.init)
    }
    /// Examples produced by pairing, by kind.
    public var pairs: [String: Int] { json["pairs"] as? [String: Int] ?? [:] }

    public init?(stateDirectory: URL) {
        guard let data = FileManager.default.contents(atPath: stateDirectory.appendingPathComponent("status.json").path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        json = object
    }
}

/// One live source in `status.json`.
public struct LiveSourceStatus {
    public let json: [String: Any]
    public var connected: Bool { json["connected"] as? Bool ?? false }
    public var connections: Int { json["connections"] as? Int ?? 0 }
    public var frames: Int { json["frames"] as? Int ?? 0 }
    public var failedAttempts: Int { json["failed_attempts"] as? Int ?? 0 }
    public var lastRecoverySeconds: Double? { (json["last_recovery_seconds"] as? NSNumber)?.doubleValue }
    public var lastError: String? { json["last_error"] as? String }
}

/// The largest `step=N` an ssl-daemon log mentions.
public func lastLoggedStep(_ log: String) -> Int {
    var best = -1
    for line in log.split(separator: "\n") where line.contains(" step=") {
        if let r = line.range(of: " step=") {
            let digits = line[r.upperBound...].prefix { $0.isNumber }
            best = max(best, Int(digits) ?? -1)
        }
    }
    return best
}

/// An AF_UNIX datagram socket bound to a path, collecting what arrives (the sd_notify peer).
public final class DatagramListener: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var open = true

    public init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw TestFailure("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw TestFailure("bind \(path): \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while lock.withLock({ open }) {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 { lock.withLock { received.append(String(decoding: buffer[0..<n], as: UTF8.self)) } }
            }
        }
        thread.start()
    }

    public var messages: [String] { lock.withLock { received } }

    deinit {
        lock.withLock { open = false }
        usleep(300_000)
        close(fd)
        unlink(path)
    }
}
