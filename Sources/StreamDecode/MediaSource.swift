/// Where media comes from, classified once so each kind gets its own FFmpeg protocol whitelist.
///
/// Printing a source (`description`, string interpolation, `dump`) shows `redactedDescription`,
/// never the raw `location`, because URLs carry passwords and tokens.
public struct MediaSource: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case file, pipe, udp, rtp, tcp, rtsp, rtmp, http, srt
    }

    /// The input exactly as the user named it (path, URL, or `-` for stdin), for opening and for
    /// matching. It may hold credentials (`user:password@`, `?passphrase=`): print `description`
    /// or `redactedDescription` instead.
    public let location: String
    public let kind: Kind

    /// Classifies `location`: `-` is stdin, a URL with a known scheme is a network source, anything
    /// else (including `file:` URLs) is a local path.
    public init(_ location: String) throws(DecodeError) {
        self.location = location
        if location == "-" || location == "pipe:" || location == "pipe:0" {
            kind = .pipe
            return
        }
        guard let colon = location.firstIndex(of: ":"), location[colon...].hasPrefix("://")
            || location.hasPrefix("file:")
        else {
            kind = .file
            return
        }
        let scheme = location[..<colon].lowercased()
        switch scheme {
        case "file": kind = .file
        case "udp": kind = .udp
        case "rtp": kind = .rtp
        case "tcp": kind = .tcp
        case "rtsp", "rtsps": kind = .rtsp
        case "rtmp", "rtmps", "rtmpt": kind = .rtmp
        case "http", "https": kind = .http
        case "srt": kind = .srt
        default:
            throw DecodeError(
                kind: .protocolNotAllowed, input: location, call: "MediaSource",
                message: "unsupported scheme '\(scheme)' (use a path, -, or one of udp, rtp, tcp, rtsp, rtmp, http(s), srt)")
        }
    }

    /// True for sources that deliver in real time and may stall: they get I/O deadlines.
    public var isLive: Bool { kind != .file }

    /// The protocols FFmpeg may open for this source, including nested opens (HLS segments, RTP
    /// over UDP, TLS under HTTPS). A local file or playlist never reaches the network, and a network
    /// playlist never opens local files.
    public var protocolWhitelist: String {
        switch kind {
        case .file: "file,crypto,data"
        case .pipe: "pipe"
        case .udp: "udp"
        case .rtp: "rtp,udp,srtp"
        case .tcp: "tcp"
        case .rtsp: "rtsp,rtsps,rtp,srtp,udp,tcp,tls"
        case .rtmp: "rtmp,rtmps,rtmpt,rtmpts,tcp,tls,http,https"
        case .http: "http,https,tcp,tls,crypto,httpproxy"
        case .srt: "srt"
        }
    }

    /// The path of a `.file` source, without a `file:` prefix.
    var localPath: String { location.hasPrefix("file:") ? String(location.dropFirst(5)) : location }

    /// The URL handed to avformat_open_input.
    var ffmpegURL: String {
        switch kind {
        case .file: location.hasPrefix("file:") ? location : "file:" + location
        case .pipe: "pipe:0"
        default: location
        }
    }

    /// `location` with its credentials masked by `redacted(_:)`: the form to log or show.
    public var redactedDescription: String { Self.redacted(location) }

    /// The redacted location (`redactedDescription`).
    public var description: String { redactedDescription }

    /// What `dump`, debuggers and reflection-based printers show: the redacted location and the kind.
    public var customMirror: Mirror {
        Mirror(self, children: ["location": redactedDescription, "kind": kind], displayStyle: .struct)
    }
}
