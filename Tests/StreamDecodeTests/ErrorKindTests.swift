import Foundation
import Glibc
@testable import StreamDecode
import Testing
import TestSupport

/// Local-file failures get the kind of their real cause, and `isTransient` follows its contract.
@Suite("Error kinds for local files")
struct ErrorKindTests {
    /// A clip copied into `dir` under `name`, so tests can change its mode without touching samples/.
    static func copyClip(to dir: URL, name: String = "clip.mp4") throws -> String {
        let target = dir.appendingPathComponent(name)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: sampleClip("h264_aac.mp4")), to: target)
        return target.path
    }

    @Test("a mode-000 file opened without root's override is permission_denied, and transient")
    func unreadableFile() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let path = try Self.copyClip(to: dir)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        // Control: the same file decodes under the unprivileged identity while it is readable.
        let readable = try withFilesystemIdentity { Result { () throws(DecodeError) in try MediaDecoder(path).info.format } }
        #expect(try readable.get().contains("mp4"))

        #expect(chmod(path, 0) == 0)
        let denied = try withFilesystemIdentity { Result { () throws(DecodeError) in try MediaDecoder(path).info.format } }
        guard case .failure(let error) = denied else {
            Issue.record("opened a mode-000 file as uid \(unprivilegedID)")
            return
        }
        #expect(error.kind == .permissionDenied, "\(error)")
        #expect(error.call == "avformat_open_input", "FFmpeg's own open met the EACCES")
        #expect(error.code == -EACCES)
        #expect(error.isTransient)
        #expect(error.input == path && error.description.contains("permission_denied"))
        // Only the helper thread changed identity.
        if geteuid() == 0 { #expect(currentFilesystemUID() == 0) }
    }

    @Test("a file in a directory we may not search fails stat with permission_denied")
    func unsearchableDirectory() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let locked = dir.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: false)
        let path = try Self.copyClip(to: locked)
        #expect(chmod(locked.path, 0) == 0)
        defer { chmod(locked.path, 0o755) }
        let denied = try withFilesystemIdentity { Result { () throws(DecodeError) in try MediaDecoder(path).info.format } }
        guard case .failure(let error) = denied else {
            Issue.record("opened a file in a mode-000 directory as uid \(unprivilegedID)")
            return
        }
        #expect(error.kind == .permissionDenied, "\(error)")
        #expect(error.call == "stat")
        #expect(error.code == -EACCES)
        #expect(error.isTransient)
        // Once the directory may be searched, the same file opens: the failure was the permission.
        #expect(chmod(locked.path, 0o755) == 0)
        #expect(try withFilesystemIdentity { (try? MediaDecoder(path))?.info.video != nil })
    }

    @Test("stat failures keep their own errno's kind: ENOENT, ENOTDIR and ELOOP are not_found")
    func statErrnoKinds() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let clip = try Self.copyClip(to: dir)
        let a = dir.appendingPathComponent("a.mp4").path, b = dir.appendingPathComponent("b.mp4").path
        #expect(symlink(b, a) == 0 && symlink(a, b) == 0)
        let cases: [(String, Int32)] = [
            (dir.appendingPathComponent("missing.mp4").path, ENOENT), (clip + "/inside.mp4", ENOTDIR), (a, ELOOP),
        ]
        for (path, errnoValue) in cases {
            #expect { try MediaDecoder(path) } throws: {
                guard let e = $0 as? DecodeError else { return false }
                return e.kind == .notFound && e.call == "stat" && e.code == -errnoValue && !e.isTransient
            }
        }
    }

    @Test("the errno mapping: one kind per cause, shared by FFmpeg's codes and our stat")
    func errnoMapping() {
        let expected: [(Int32, DecodeError.Kind?)] = [
            (ENOENT, .notFound), (ENOTDIR, .notFound), (EISDIR, .notFound), (ELOOP, .notFound), (ENAMETOOLONG, .notFound),
            (EACCES, .permissionDenied), (EPERM, .permissionDenied),
            (EIO, .io), (ENXIO, .io), (EMFILE, .io), (ENFILE, .io), (ENOMEM, .io), (ESTALE, .io), (ENODEV, .io),
            (ECONNREFUSED, .io), (ECONNRESET, .io), (EHOSTUNREACH, .io),
            (ETIMEDOUT, .timedOut), (EINVAL, nil), (EPROTO, nil),
        ]
        for (value, kind) in expected {
            #expect(errorKind(errno: value) == kind, "errno \(value)")
            // FFmpeg reports errno e as AVERROR(e) == -e; unnamed ones stay `.ffmpeg`.
            let error = decodeError(-value, call: "av_read_frame", input: "x.mp4")
            #expect(error.kind == (kind ?? .ffmpeg), "AVERROR(\(value)) -> \(error.kind)")
            #expect(error.code == -value && !error.message.isEmpty)
        }
        // FFmpeg's own codes are not errno values.
        #expect(decodeError(AVCode.invalidData, call: "c", input: "x").kind == .invalidData)
        #expect(decodeError(AVCode.eof, call: "c", input: "x").kind == .invalidData)
        // HTTP statuses, which rtsp.c also uses for RTSP replies: a refused login is its own kind.
        #expect(decodeError(AVCode.httpUnauthorized, call: "c", input: "x").kind == .unauthorized)
        #expect(decodeError(AVCode.httpForbidden, call: "c", input: "x").kind == .unauthorized)
        #expect(decodeError(AVCode.httpNotFound, call: "c", input: "x").kind == .notFound)
    }

    @Test("isTransient: the input may succeed unchanged later, for every kind")
    func transientContract() {
        let transient: [DecodeError.Kind: Bool] = [
            .permissionDenied: true, .io: true, .timedOut: true, .interrupted: true,
            .notFound: false, .invalidData: false, .truncated: false, .noStreams: false, .unsupportedCodec: false,
            .unauthorized: false, .protocolNotAllowed: false, .ffmpeg: false, .invalidOptions: false,
        ]
        #expect(Set(transient.keys) == Set(DecodeError.Kind.allCases), "every kind has a stated answer")
        for (kind, expected) in transient {
            #expect(DecodeError(kind: kind, input: "x", call: "c", message: "m").isTransient == expected, "\(kind)")
        }
        #expect(DecodeError.Kind.permissionDenied.rawValue == "permission_denied")
        #expect(DecodeError.Kind.io.rawValue == "io_error")
    }
}
