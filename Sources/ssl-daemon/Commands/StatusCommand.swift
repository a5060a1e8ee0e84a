import ArgumentParser
import DaemonRuntime
import Foundation
import Glibc

/// `ssl-daemon status`: a running daemon's state in a few lines, from its endpoint's
/// `/api/status` (or, with `--state-dir`, from the `status.json` it keeps there).
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a running daemon's state in a few lines.")

    @Option(help: "The daemon's endpoint (default: http.listen of --config, else http://127.0.0.1:9741).")
    var url: String?

    @Option(help: "TOML config of the daemon (its http.listen is the endpoint).")
    var config: String?

    @Option(help: "Read STATE_DIR/status.json instead of asking the endpoint (works with the endpoint off).")
    var stateDir: String?

    @Flag(help: "Print the status document as JSON instead.")
    var json = false

    func run() throws {
        let data: Data
        do { data = try fetch() } catch {
            FileHandle.standardError.write(Data("ssl-daemon status: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            FileHandle.standardOutput.write(data)
            if data.last != UInt8(ascii: "\n") { print() }
            return
        }
        guard let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            FileHandle.standardError.write(Data("ssl-daemon status: the answer is not a status document\n".utf8))
            throw ExitCode(1)
        }
        print(Self.describe(s), terminator: "")
    }

    private func fetch() throws(DaemonError) -> Data {
        if let stateDir {
            let path = (stateDir as NSString).appendingPathComponent("status.json")
            guard let data = FileManager.default.contents(atPath: path) else { throw .unreachable(path, "no status here (is a daemon running with this state directory?)") }
            return data
        }
        var base = url
        if base == nil, let config {
            do { base = try DaemonConfig.load(file: config).httpListen } catch { throw .config(error) }
            if base?.isEmpty == true { throw .unreachable(config, "http.listen is off in this config: use --state-dir") }
        }
        let target = base ?? DaemonConfig().httpListen
        let hostPort = target.hasPrefix("http://") ? String(target.dropFirst(7)).split(separator: "/").first.map(String.init) ?? "" : target
        guard let address = ListenAddress(hostPort) else { throw .unreachable(target, "not an http://HOST:PORT address") }
        return try HTTPGet.body(host: address.host, port: address.port, path: "/api/status", timeout: 5)
    }

    /// A few human lines from a status document.
    static func describe(_ s: [String: Any]) -> String {
        func number(_ key: String, in o: [String: Any]?) -> Double? { (o?[key] as? NSNumber)?.doubleValue }
        let training = s["training"] as? [String: Any]
        var out = "ssl-daemon \(s["version"] as? String ?? "?") pid \(s["pid"] ?? "?"): \(s["state"] as? String ?? "?"), step \(s["step"] ?? "?")"
        if let rate = number("pairs_per_second", in: s) { out += String(format: ", %.1f pairs/s", rate) }
        if let up = number("uptime_seconds", in: s) { out += ", up \(StatusPage.duration(up))" }
        out += "\n"
        var health: [String] = []
        if let l = number("loss", in: training) {
            health.append(String(format: "loss %.3f", l) + (number("chance_loss", in: training).map { String(format: " (chance %.2f)", $0) } ?? ""))
        }
        if let a = number("accuracy", in: training) { health.append(String(format: "accuracy %.1f %%", a * 100)) }
        if let r = number("std_ratio", in: training) { health.append(String(format: "std×√d %.3f", r)) }
        if let r = number("effective_rank", in: training) { health.append(String(format: "effective rank %.1f", r)) }
        if let k = number("knn_accuracy", in: training) { health.append(String(format: "kNN %.1f %%", k * 100)) }
        if (training?["collapse"] as? Bool) == true { health.append("COLLAPSE ALARM: \(training?["collapse_reason"] as? String ?? "")") }
        if !health.isEmpty { out += "  " + health.joined(separator: ", ") + "\n" }
        if let f = s["files"] as? [String: Any] {
            out += "  files: \(f["ok"] ?? 0) ok, \(f["bad"] ?? 0) bad, \(f["failed"] ?? 0) failed, \(f["pending"] ?? 0) pending\n"
        }
        for l in s["live"] as? [[String: Any]] ?? [] {
            let up = (l["connected"] as? Bool) == true ? "connected" : "disconnected"
            out += "  \(l["name"] ?? "live") \(l["url"] ?? ""): \(up), \(l["frames"] ?? 0) frames, \(l["dropped_frames"] ?? 0) dropped, \(l["reconnects"] ?? 0) reconnects"
            if let r = number("last_recovery_seconds", in: l) { out += String(format: " (last back in %.1f s)", r) }
            if let n = l["failed_attempts"] as? Int, n > 0 { out += ", \(n) failed attempts in a row" }
            if let e = l["last_error"] as? String { out += ", last error: \(e)" }
            out += "\n"
        }
        if let c = s["last_checkpoint"] as? [String: Any], let path = c["path"] as? String {
            out += "  checkpoint: \(path)"
            if let t = number("time", in: c) { out += ", \(StatusPage.duration(Date().timeIntervalSince1970 - t)) ago" }
            out += "\n"
        } else {
            out += "  checkpoint: none yet\n"
        }
        return out
    }
}

/// A blocking HTTP/1.0 GET over a TCP socket, for `status` (the daemon's own endpoint: no
/// TLS, no redirects). The whole answer is read; a status other than 200 is an error.
enum HTTPGet {
    static func body(host: String, port: Int, path: String, timeout: Double) throws(DaemonError) -> Data {
        let where_ = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(path)"
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { throw .unreachable(where_, "cannot resolve \(host)") }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw .unreachable(where_, "socket: \(DaemonError.errnoText(errno))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            throw .unreachable(where_, "\(DaemonError.errnoText(errno)) (is the daemon running, with its endpoint on?)")
        }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw .unreachable(where_, "send: \(DaemonError.errnoText(errno))")
        }
        var answer = Data()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { throw .unreachable(where_, "recv: \(DaemonError.errnoText(errno))") }
            if n == 0 { break }
            answer.append(contentsOf: chunk[0..<n])
        }
        guard let split = answer.range(of: Data("\r\n\r\n".utf8)) else { throw .unreachable(where_, "not an HTTP answer") }
        let head = String(decoding: answer[..<split.lowerBound], as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 200") || head.hasPrefix("HTTP/1.0 200") else {
            throw .unreachable(where_, "answered \(head.split(separator: "\r\n").first ?? "")")
        }
        return Data(answer[split.upperBound...])
    }
}
