/// Masking credentials in source URLs before anything prints them.
extension MediaSource {
    /// `location` with its secrets replaced by `***`, for logs, errors and status pages.
    ///
    /// Only URLs (`scheme://...`) are changed; paths, `-` and `pipe:` come back as they are.
    /// Two things are masked, each where FFmpeg or a server would read a secret:
    ///
    /// - The whole userinfo, user name included: `rtsp://admin:pw@cam/x` becomes
    ///   `rtsp://***@cam/x`. Some services put the token in the user name, so it is not kept. The
    ///   userinfo ends at the last `@` before the first `/`, which also covers passwords written
    ///   with an unescaped `@`, `?` or `#`.
    /// - The value of every secret-looking parameter, in a query, a fragment or `;` parameters,
    ///   SRT's `srt://host:port?passphrase=...&streamid=...` included: `?token=abc&x=1` becomes
    ///   `?token=***&x=1`. A name is secret (compared case-insensitively, percent-decoded, with `-`
    ///   and `.` read as `_`) when it is one of `pass`, `pwd`, `key`, `sig`, `auth`, `token`,
    ///   `secret`, `session`, `streamid`, `credential(s)`, `srtp_in_params`, `srtp_out_params`,
    ///   `hdnts`, `hdnea`, `hdntl`, `jwt`, or ends in `token`, `secret`, `password`, `passwd`,
    ///   `passphrase`, `signature`, `apikey`, `_key`, `_sig`, `_auth`, `authorization`,
    ///   `credential`, `sessionid` or `session_id` (so `access_token`, `X-Amz-Signature`,
    ///   `api_key`, `client_secret` are all masked). A secret value runs to the next `&`.
    ///
    /// - For RTMP (`rtmp`, `rtmps`, `rtmpt`, `rtmpts`), the stream name after the application:
    ///   `rtmp://host/live/KEY` becomes `rtmp://host/live/***`, because servers use it as the
    ///   stream key.
    ///
    /// When the two readings overlap (an `@` inside a query of a URL with no path, as in
    /// `srt://h:1?user=a@b&passphrase=x`), both are masked: the result may hide more than the
    /// secret, never less.
    public static func redacted(_ location: String) -> String {
        let bytes = Array(location.utf8)
        guard let start = authorityStart(bytes) else { return location }
        var masked: [Range<Int>] = []

        // Userinfo: up to the last "@" before the first "/".
        let authorityEnd = bytes[start...].firstIndex(of: UInt8(ascii: "/")) ?? bytes.endIndex
        if let at = bytes[start..<authorityEnd].lastIndex(of: UInt8(ascii: "@")), at > start {
            masked.append(start..<at)
        }

        // RTMP: everything in the path after the application's "/" is the stream name (key).
        if String(decoding: bytes[..<start], as: UTF8.self).lowercased().hasPrefix("rtmp"), authorityEnd < bytes.count {
            let pathEnd = bytes[authorityEnd...].firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? bytes.endIndex
            if authorityEnd + 1 < pathEnd, let appEnd = bytes[(authorityEnd + 1)..<pathEnd].firstIndex(of: UInt8(ascii: "/")),
                appEnd + 1 < pathEnd
            {
                masked.append((appEnd + 1)..<pathEnd)
            }
        }

        // Parameters: each name follows "?", "&", ";" or "#".
        let delimiters: Set<UInt8> = [UInt8(ascii: "?"), UInt8(ascii: "&"), UInt8(ascii: ";"), UInt8(ascii: "#")]
        var i = start
        while i < bytes.count {
            guard delimiters.contains(bytes[i]) else {
                i += 1
                continue
            }
            let nameStart = i + 1
            var nameEnd = nameStart
            while nameEnd < bytes.count, bytes[nameEnd] != UInt8(ascii: "="), !delimiters.contains(bytes[nameEnd]) {
                nameEnd += 1
            }
            guard nameEnd < bytes.count, bytes[nameEnd] == UInt8(ascii: "=") else {
                i = nameEnd
                continue
            }
            let valueStart = nameEnd + 1
            if isSecretParameter(bytes[nameStart..<nameEnd]) {
                let valueEnd = bytes[valueStart...].firstIndex(of: UInt8(ascii: "&")) ?? bytes.endIndex
                if valueEnd > valueStart { masked.append(valueStart..<valueEnd) }
                i = valueEnd
            } else {
                // A delimiter inside an ordinary value starts the next name (`?a=b#token=...`).
                i = valueStart
            }
        }
        guard !masked.isEmpty else { return location }

        // Merge overlapping ranges and write each as one "***".
        masked.sort { $0.lowerBound < $1.lowerBound }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var position = 0
        for range in masked {
            if range.lowerBound >= position {
                output += bytes[position..<range.lowerBound]
                output += Array("***".utf8)
                position = range.upperBound
            } else if range.upperBound > position {
                position = range.upperBound
            }
        }
        output += bytes[position...]
        return String(decoding: output, as: UTF8.self)
    }

    /// The index just after `scheme://`, or nil when `bytes` is not a URL (RFC 3986 scheme:
    /// a letter, then letters, digits, `+`, `-` or `.`).
    private static func authorityStart(_ bytes: [UInt8]) -> Int? {
        func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= UInt8(ascii: "a") && (b | 0x20) <= UInt8(ascii: "z") }
        guard let first = bytes.first, isLetter(first) else { return nil }
        var i = 1
        while i < bytes.count {
            let b = bytes[i]
            if isLetter(b) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "+")
                || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
            {
                i += 1
                continue
            }
            break
        }
        let separator = Array("://".utf8)
        guard bytes.count >= i + separator.count, Array(bytes[i..<(i + separator.count)]) == separator else { return nil }
        return i + separator.count
    }

    private static let secretNames: Set<String> = [
        "pass", "pwd", "key", "sig", "auth", "token", "secret", "session", "streamid", "credential", "credentials",
        "srtp_in_params", "srtp_out_params", "hdnts", "hdnea", "hdntl", "jwt",
    ]
    private static let secretSuffixes = [
        "token", "secret", "password", "passwd", "passphrase", "signature", "apikey", "_key", "_sig", "_auth",
        "authorization", "credential", "sessionid", "session_id",
    ]

    /// Whether a parameter name (raw bytes from the URL) names a secret; see `redacted(_:)`.
    static func isSecretParameter(_ raw: ArraySlice<UInt8>) -> Bool {
        var name = ""
        var i = raw.startIndex
        while i < raw.endIndex {
            var b = raw[i]
            if b == UInt8(ascii: "%"), i + 2 < raw.endIndex, let high = hexValue(raw[i + 1]), let low = hexValue(raw[i + 2]) {
                b = high << 4 | low
                i += 2
            }
            i += 1
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): name.unicodeScalars.append(Unicode.Scalar(b | 0x20))
            case UInt8(ascii: "-"), UInt8(ascii: "."): name.append("_")
            default: name.unicodeScalars.append(Unicode.Scalar(b))
            }
        }
        return secretNames.contains(name) || secretSuffixes.contains { name.hasSuffix($0) }
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
