import Glibc

/// Screens a local HLS playlist before FFmpeg opens it, for the one runaway no FFmpeg option bounds.
///
/// FFmpeg's HLS demuxer (libavformat/hls.c, `hls_read_header`) parses every playlist a master
/// playlist names, and every playlist those name in turn, appending each to one list while it walks
/// that list and never checking for repeats. A playlist that names itself as a variant, or any
/// cycle of playlists, grows the list without end inside `avformat_open_input` (hundreds of MB in
/// seconds) with no reload counter involved. We follow the same references first and refuse a
/// cycle, or a tree larger than `maximumPlaylists`, as `.invalidData`.
///
/// Only references hls.c parses as playlists are followed: the URI line after `#EXT-X-STREAM-INF`
/// and the `URI` attribute of `#EXT-X-MEDIA`. A media playlist that lists itself as a *segment* is
/// not a cycle here: hls.c feeds that segment's bytes to the segment demuxer, and the reload bound
/// `FormatContext` sets for local playlists ends it.
enum LocalPlaylist {
    /// Most playlists one local HLS input may expand to, counting repeats as hls.c allocates them.
    /// Real masters name a few dozen variants and renditions.
    static let maximumPlaylists = 256
    /// Most bytes read from one playlist; a longer one is scanned only this far.
    static let maximumBytes = 4 << 20

    /// Throws `.invalidData` when the playlist at `path` refers back to itself through nested
    /// playlists, or expands to more than `maximumPlaylists`. Returns quietly for anything that is
    /// not a local HLS playlist, or that cannot be read: FFmpeg then reports it the usual way.
    static func screen(path: String, input: String) throws(DecodeError) {
        guard let rootID = canonicalPath(path), let rootText = playlistText(path) else { return }
        var texts: [String: String?] = [rootID: rootText]
        func text(of location: String, id: String) -> String? {
            if let cached = texts[id] { return cached }
            let loaded = playlistText(location)
            texts[id] = loaded
            return loaded
        }
        func refused(_ message: String) -> DecodeError {
            DecodeError(kind: .invalidData, input: input, call: "playlist", message: message)
        }
        // Depth first; `chain` is the canonical paths from the root down to `location`.
        var expanded = 1
        var pending: [(location: String, chain: [String])] = [(path, [rootID])]
        while let (location, chain) = pending.popLast() {
            guard let body = text(of: location, id: chain[chain.count - 1]) else { continue }
            for reference in playlistReferences(in: body) {
                guard let target = resolve(reference, against: location), let id = canonicalPath(target),
                    text(of: target, id: id) != nil
                else { continue }
                if let loop = chain.firstIndex(of: id) {
                    throw refused(
                        "playlist \(chain[chain.count - 1]) names \(chain[loop]) again: a cycle of nested playlists "
                            + "that FFmpeg's HLS demuxer would expand without end")
                }
                expanded += 1
                if expanded > maximumPlaylists {
                    throw refused("nested playlists expand to more than \(maximumPlaylists) playlists")
                }
                pending.append((target, chain + [id]))
            }
        }
    }

    /// The references hls.c's `parse_playlist` opens as playlists, in file order. Lines are
    /// chomped of trailing whitespace as `ff_get_chomp_line` does.
    static func playlistReferences(in text: String) -> [String] {
        var references: [String] = []
        var variantPending = false
        for raw in text.split(whereSeparator: \.isLineSeparator) {
            let line = raw.trimmingTrailingWhitespace
            if line.hasPrefix("#EXT-X-STREAM-INF:") {
                variantPending = true
            } else if line.hasPrefix("#EXT-X-MEDIA:") {
                // hls.c ignores closed captions; every other rendition with a URI is a playlist.
                if attribute("TYPE", in: line) != "CLOSED-CAPTIONS", let uri = attribute("URI", in: line), !uri.isEmpty {
                    references.append(uri)
                }
            } else if line.hasPrefix("#") {
                continue
            } else if !line.isEmpty, variantPending {
                references.append(String(line))
                variantPending = false
            }
        }
        return references
    }

    /// The value of `KEY=value` or `KEY="value"` in a tag's attribute list.
    static func attribute(_ key: String, in line: Substring) -> String? {
        guard let colon = line.firstIndex(of: ":") else { return nil }
        var rest = line[line.index(after: colon)...]
        while !rest.isEmpty {
            while rest.first == "," || rest.first == " " { rest.removeFirst() }
            guard let equals = rest.firstIndex(of: "=") else { return nil }
            let name = rest[..<equals]
            rest = rest[rest.index(after: equals)...]
            let value: Substring
            if rest.first == "\"" {
                rest.removeFirst()
                let close = rest.firstIndex(of: "\"") ?? rest.endIndex
                value = rest[..<close]
                rest = close < rest.endIndex ? rest[rest.index(after: close)...] : rest[close...]
            } else {
                let comma = rest.firstIndex(of: ",") ?? rest.endIndex
                value = rest[..<comma]
                rest = rest[comma...]
            }
            if name == key { return String(value) }
        }
        return nil
    }

    /// A reference as a local path, resolved against the playlist that names it; nil for network
    /// and other non-file URLs (the local protocol whitelist refuses them anyway).
    static func resolve(_ reference: String, against playlist: String) -> String? {
        var path = reference
        if path.hasPrefix("file:") {
            path.removeFirst(5)
            if path.hasPrefix("//") { path.removeFirst(2) }
        } else if let colon = path.firstIndex(of: ":"), path[colon...].hasPrefix("://") {
            return nil
        }
        if path.hasPrefix("/") { return path }
        let base = playlist.hasPrefix("file:") ? String(playlist.dropFirst(5)) : playlist
        guard let slash = base.lastIndex(of: "/") else { return path }
        return base[...slash] + path
    }

    /// realpath(3): one name per file, whatever symlinks, `.` or `..` lead to it; nil if missing.
    static func canonicalPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The text of a regular file whose first line is `#EXTM3U` (what hls.c requires), at most
    /// `maximumBytes` of it; nil otherwise. Opened non-blocking so a FIFO cannot hold us.
    static func playlistText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        let magic = Array("#EXTM3U".utf8)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < maximumBytes {
            // Read the magic alone first: a large segment named as a variant costs 7 bytes.
            let want = bytes.count < magic.count ? magic.count - bytes.count : min(chunk.count, maximumBytes - bytes.count)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, want) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
            if bytes.count >= magic.count && !bytes.starts(with: magic) { return nil }
        }
        guard bytes.starts(with: magic) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        let firstLine = text.prefix { !$0.isLineSeparator }
        guard firstLine.trimmingTrailingWhitespace == "#EXTM3U" else { return nil }
        return text
    }
}

extension Character {
    /// Ends a line for `ff_get_line`: LF, CR, or CR LF (one Character in Swift).
    fileprivate var isLineSeparator: Bool { self == "\n" || self == "\r" || self == "\r\n" }
}

extension Substring {
    /// Without trailing whitespace, as `ff_get_chomp_line` leaves a line.
    fileprivate var trimmingTrailingWhitespace: Substring {
        var s = self
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return s
    }
}
