import StreamDecode

/// How an RTSP source carries its media (`rtsp_transport`): FFmpeg's choice (UDP, falling back
/// to TCP), RTP over UDP, interleaved in the RTSP TCP connection, or tunnelled through HTTP.
package enum RTSPTransport: String, ConfigChoice {
    case auto, udp, tcp, http
}

/// One live stream with options of its own: a `[streams.NAME]` table. Streams given as plain
/// URLs (`sources.streams`, `--stream`) are the same with every option at its default and the
/// name `live-N`.
///
/// The name is the source's label in metrics, logs and the status page (never the URL, which may
/// hold credentials). Options apply to one protocol each and are checked against the URL's kind
/// at start (`validate`), so a misspelt or misplaced option fails the start, not the connection.
package struct StreamSettings: Sendable, Equatable {
    package var name: String
    /// The URL (or `-` for stdin). It may hold credentials: print `MediaSource.redacted(url)`.
    package var url: String
    /// RTSP only.
    package var rtspTransport: RTSPTransport = .auto
    /// SRT only: the receiver's latency window in seconds (nil: libsrt's default, 0.12 s).
    package var srtLatency: Double? = nil
    /// SRT only: the stream's passphrase (AES), 10 to 79 characters; "" for none. A secret.
    package var srtPassphrase = ""
    /// HTTP(S) and HLS only: extra request headers, each `Name: value`, sent on the playlist's
    /// and every segment's request. Their values are treated as secrets.
    package var httpHeaders: [String] = []
    /// Under mpirun: the rank that reads this stream.
    package var rank = 0

    package init(name: String, url: String) {
        self.name = name
        self.url = url
    }

    /// The keys a `[streams.NAME]` table may hold, with what each means.
    package static let keys: [(key: String, help: String)] = [
        ("url", "the stream's URL (udp, rtp, tcp, rtsp, rtmp, http/hls, srt) or - for stdin; required"),
        ("rtsp_transport", "RTSP only: \(RTSPTransport.names.joined(separator: ", ")) (auto: UDP, then TCP)"),
        ("srt_latency", "SRT only: receiver latency, seconds (0...60; default libsrt's 0.12)"),
        ("srt_passphrase", "SRT only: passphrase, 10 to 79 characters (a secret: never printed)"),
        ("http_headers", "HTTP(S)/HLS only: extra request headers, [\"Name: value\", ...] (values never printed)"),
        ("rank", "under mpirun: the rank that reads this stream (default 0)"),
    ]

    /// Reads one `[streams.NAME]` table; `origin` names the file in errors.
    package static func read(name: String, table: [(key: String, value: TOMLValue)], origin: String) throws(ConfigError) -> StreamSettings {
        var stream = StreamSettings(name: name, url: "")
        var sawURL = false
        for (key, value) in table {
            let path = "streams.\(name).\(key)"
            func bad(_ expected: String) -> ConfigError { ConfigError(description: "config \(origin): key '\(path)' must be \(expected)") }
            switch (key, value) {
            case ("url", .string(let v)): stream.url = v; sawURL = true
            case ("url", _): throw bad("a string")
            case ("rtsp_transport", .string(let v)):
                guard let t = RTSPTransport(rawValue: v) else { throw bad("one of \(RTSPTransport.names.joined(separator: ", ")), not \(DaemonConfig.quoted(v))") }
                stream.rtspTransport = t
            case ("rtsp_transport", _): throw bad("a string, one of \(RTSPTransport.names.joined(separator: ", "))")
            case ("srt_latency", .float(let v)): stream.srtLatency = v
            case ("srt_latency", .integer(let v)): stream.srtLatency = Double(v)
            case ("srt_latency", _): throw bad("a number of seconds")
            case ("srt_passphrase", .string(let v)): stream.srtPassphrase = v
            case ("srt_passphrase", _): throw bad("a string")
            case ("http_headers", .array(let items)):
                var headers: [String] = []
                for item in items {
                    guard case .string(let v) = item else { throw bad("an array of strings") }
                    headers.append(v)
                }
                stream.httpHeaders = headers
            case ("http_headers", _): throw bad("an array of strings")
            case ("rank", .integer(let v)):
                guard (0...65_535).contains(v) else { throw bad("a rank in 0...65535") }
                stream.rank = v
            case ("rank", _): throw bad("an integer (a rank)")
            default:
                if case .table = value { throw ConfigError(description: "config \(origin): unknown section [\(path)]") }
                throw ConfigError(description: "config \(origin): unknown key '\(path)' (a stream takes \(keys.map(\.key).joined(separator: ", ")))")
            }
        }
        guard sawURL else { throw ConfigError(description: "config \(origin): [streams.\(name)] has no url") }
        return stream
    }

    /// Checks the name, the URL and that each option suits the URL's protocol. Messages name the
    /// key and show the URL redacted.
    package func validate() throws(ConfigError) {
        let table = "streams.\(name)"
        func fail(_ message: String) -> ConfigError { ConfigError(description: "config: \(message)") }
        let nameOK = !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
        guard nameOK else {
            throw fail("stream name \(DaemonConfig.quoted(name)) must be 1 to 64 letters, digits, '-' or '_' (it labels metrics)")
        }
        let shown = MediaSource.redacted(url)
        let source: MediaSource
        do { source = try MediaSource(url) } catch {
            throw fail("\(table).url '\(shown)' is not supported: \(error.message)")
        }
        guard source.isLive else {
            throw fail("""
                \(table).url '\(shown)' is not a live source URL: use a udp, rtp, tcp, rtsp, rtmp, http(s) or srt URL, \
                or - for stdin (files and directories go in sources.watch / --watch)
                """)
        }
        func only(_ key: String, _ kind: MediaSource.Kind, _ set: Bool) throws(ConfigError) {
            if set && source.kind != kind {
                throw fail("\(table).\(key) applies to \(kind.rawValue) URLs only, and '\(shown)' is \(source.kind.rawValue)")
            }
        }
        try only("rtsp_transport", .rtsp, rtspTransport != .auto)
        try only("srt_latency", .srt, srtLatency != nil)
        try only("srt_passphrase", .srt, !srtPassphrase.isEmpty)
        try only("http_headers", .http, !httpHeaders.isEmpty)
        if let latency = srtLatency, !(latency >= 0 && latency <= 60) {
            throw fail("\(table).srt_latency = \(DaemonConfig.number(latency)) is out of range: valid is [0, 60] seconds")
        }
        if !srtPassphrase.isEmpty && !(10...79).contains(srtPassphrase.utf8.count) {
            throw fail("\(table).srt_passphrase must be 10 to 79 characters long (SRT's rule), got \(srtPassphrase.utf8.count)")
        }
        for (i, header) in httpHeaders.enumerated() {
            let colon = header.firstIndex(of: ":")
            let field = colon.map { header[..<$0] } ?? ""
            let token = !field.isEmpty && field.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f && !"()<>@,;:\\\"/[]?={}".unicodeScalars.contains($0) }
            let clean = !header.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0.value == 0 }
            guard token && clean else {
                throw fail("\(table).http_headers[\(i)] must be one line 'Name: value' with a token name (header \(i + 1) of \(httpHeaders.count); its value is not shown)")
            }
        }
    }

    /// The FFmpeg options these settings imply, for `DecodeOptions.formatOptions`.
    package var formatOptions: [String: String] {
        var o: [String: String] = [:]
        if rtspTransport != .auto { o["rtsp_transport"] = rtspTransport.rawValue }
        // libsrt's `latency` option is in microseconds.
        if let latency = srtLatency { o["latency"] = String(Int((latency * 1_000_000).rounded())) }
        if !srtPassphrase.isEmpty { o["passphrase"] = srtPassphrase }
        if !httpHeaders.isEmpty { o["headers"] = httpHeaders.map { $0 + "\r\n" }.joined() }
        return o
    }

    /// The `[streams.NAME]` table as TOML with its secrets masked: the URL redacted, the
    /// passphrase and header values as `***`. What `--print-config` and checkpoints hold.
    package var redactedTOML: String {
        var out = "\n[streams.\(name)]\nurl = \(DaemonConfig.quoted(MediaSource.redacted(url)))\n"
        if rtspTransport != .auto { out += "rtsp_transport = \(DaemonConfig.quoted(rtspTransport.rawValue))\n" }
        if let latency = srtLatency { out += "srt_latency = \(DaemonConfig.number(latency))\n" }
        if !srtPassphrase.isEmpty { out += "srt_passphrase = \"***\"\n" }
        if rank != 0 { out += "rank = \(rank)\n" }
        if !httpHeaders.isEmpty {
            let masked = httpHeaders.map { h in h.firstIndex(of: ":").map { String(h[..<$0]) + ": ***" } ?? "***" }
            out += "http_headers = [" + masked.map(DaemonConfig.quoted).joined(separator: ", ") + "]\n"
        }
        return out
    }
}
