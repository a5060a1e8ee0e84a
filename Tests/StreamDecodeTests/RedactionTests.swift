import Foundation
import StreamDecode
import Testing
import TestSupport

/// Secrets in source URLs never reach printed text: `MediaSource.redacted`, the descriptions
/// built on it, and real failing opens whose errors are printed.
@Suite("Redacting secrets in URLs")
struct RedactionTests {
    static let cases: [(String, String)] = [
        // Userinfo, whole: user name and password.
        ("rtsp://admin:hunter2@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
        ("rtsp://admin@cam.local/live", "rtsp://***@cam.local/live"),
        ("rtsp://admin:p@ss@cam/x", "rtsp://***@cam/x"),
        ("rtsp://admin:p#s?s@cam/x", "rtsp://***@cam/x"),
        ("RTSPS://User:Pw@[::1]:322/x", "RTSPS://***@[::1]:322/x"),
        ("http://u:p@h/?q=1&client_secret=zz", "http://***@h/?q=1&client_secret=***"),
        // SRT options.
        ("srt://127.0.0.1:9000?passphrase=verysecret123&latency=200", "srt://127.0.0.1:9000?passphrase=***&latency=200"),
        ("srt://h:1?mode=caller&streamid=#!::r=live/cam1,u=bob&pbkeylen=16", "srt://h:1?mode=caller&streamid=***&pbkeylen=16"),
        ("srt://h:1?email=a@b&passphrase=x", "srt://***@b&passphrase=***"),
        // Query strings, case-insensitive, percent-decoded names.
        (
            "https://cdn.example/v/x.m3u8?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F2024&X-Amz-Date=20240101&X-Amz-Signature=abcdef",
            "https://cdn.example/v/x.m3u8?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&X-Amz-Date=20240101&X-Amz-Signature=***"
        ),
        (
            "http://h/p?TOKEN=a&Pass=b&PWD=c&sig=d&key=e&secret=f&auth=g&access_token=h&password=i&api_key=j&user=bob",
            "http://h/p?TOKEN=***&Pass=***&PWD=***&sig=***&key=***&secret=***&auth=***&access_token=***&password=***&api_key=***&user=bob"
        ),
        ("http://h/p?pass%77ord=zz&a=1", "http://h/p?pass%77ord=***&a=1"),
        ("rtmp://host/app?token=abc", "rtmp://host/app?token=***"),
        // RTMP stream names are stream keys.
        ("rtmp://127.0.0.1:1935/live/sk_live_123", "rtmp://127.0.0.1:1935/live/***"),
        ("RTMPS://u:p@host/app/inst/key?x=1", "RTMPS://***@host/app/***?x=1"),
        ("rtmp://host/app", "rtmp://host/app"),
        ("rtmp://host/app/", "rtmp://host/app/"),
        ("rtsp://cam/x?user=a&pwd=b", "rtsp://cam/x?user=a&pwd=***"),
        ("srtp://127.0.0.1:5004?srtp_in_suite=AES_CM_128_HMAC_SHA1_80&srtp_in_params=zRhBbvl/8UQ=",
         "srtp://127.0.0.1:5004?srtp_in_suite=AES_CM_128_HMAC_SHA1_80&srtp_in_params=***"),
        // Fragments and path parameters.
        ("http://h/p#access_token=xyz&state=1", "http://h/p#access_token=***&state=1"),
        ("http://h/p?x=1#token=abc", "http://h/p?x=1#token=***"),
        ("http://h/p;jsessionid=ABC?x=1", "http://h/p;jsessionid=***"),
        // Nothing secret: unchanged.
        ("udp://127.0.0.1:5000?pkt_size=1316&localport=1", "udp://127.0.0.1:5000?pkt_size=1316&localport=1"),
        ("http://h/p?token=", "http://h/p?token="),
        ("https://host/live.m3u8", "https://host/live.m3u8"),
        // Not URLs: paths may contain anything.
        ("/videos/clip?token=x.mp4", "/videos/clip?token=x.mp4"),
        ("clip@home:1.mp4", "clip@home:1.mp4"),
        ("file:/x/y.mp4", "file:/x/y.mp4"),
        ("-", "-"),
    ]

    @Test("redacted(_:) masks userinfo and secret parameters across URL shapes")
    func shapes() {
        for (raw, expected) in Self.cases {
            #expect(MediaSource.redacted(raw) == expected, "\(raw)")
            // Idempotent: redacting twice changes nothing more.
            #expect(MediaSource.redacted(MediaSource.redacted(raw)) == expected, "\(raw)")
        }
    }

    @Test("a source prints only its redacted form; location keeps the raw URL")
    func sourceDescriptions() throws {
        let raw = "rtsp://operator:topsecret@127.0.0.1:8554/cam?token=alsosecret"
        let source = try MediaSource(raw)
        #expect(source.location == raw)
        #expect(source.redactedDescription == "rtsp://***@127.0.0.1:8554/cam?token=***")
        var dumped = ""
        dump(source, to: &dumped)
        for printed in [source.description, "\(source)", String(reflecting: source), dumped, "\([source])"] {
            #expect(!printed.contains("topsecret") && !printed.contains("alsosecret"), "\(printed)")
        }
    }

    @Test("an error's description, interpolation and dump never show the secret")
    func errorDescriptions() {
        let error = DecodeError(kind: .io, input: "srt://h:1?passphrase=verysecret123", call: "avformat_open_input", code: -5, message: "I/O error")
        var dumped = ""
        dump(error, to: &dumped)
        for printed in [error.description, "\(error)", String(reflecting: error), dumped] {
            #expect(!printed.contains("verysecret123"), "\(printed)")
        }
        #expect(error.description.contains("srt://h:1?passphrase=***"))
        #expect(error.input.contains("verysecret123"), "the raw input stays for programmatic use")
    }

    @Test("an unsupported scheme's error does not print the password")
    func classificationError() {
        #expect { try MediaSource("gopher://user:topsecret@host/x") } throws: {
            guard let e = $0 as? DecodeError else { return false }
            return e.kind == .protocolNotAllowed && !e.description.contains("topsecret")
        }
    }

    @Test("a real RTSP open refused by a closed port: the error names the host, not the password")
    func rtspRefused() throws {
        let port = try freePort()
        let url = "rtsp://user:secret@127.0.0.1:\(port)/x"
        var o = DecodeOptions()
        o.ioTimeout = 5
        let outcome = try #require(decodeWithinResult(20, url, options: o), "the open did not return")
        guard case .failure(let error) = outcome else {
            Issue.record("opened \(url)")
            return
        }
        #expect(error.kind == .io, "\(error)")
        #expect(error.isTransient)
        #expect(error.input == url)
        #expect(!error.description.contains("secret"), "\(error)")
        #expect(error.description.contains("rtsp://***@127.0.0.1:\(port)/x"), "\(error)")
    }

    @Test("a real SRT open with nobody listening: the error does not print the passphrase")
    func srtPassphrase() throws {
        let port = try freePort(udp: true)
        let url = "srt://127.0.0.1:\(port)?passphrase=verysecret123&connect_timeout=2000"
        var o = DecodeOptions()
        o.ioTimeout = 3
        let outcome = try #require(decodeWithinResult(30, url, options: o), "the open did not return")
        guard case .failure(let error) = outcome else {
            Issue.record("opened \(url)")
            return
        }
        #expect(error.input == url)
        var dumped = ""
        dump(error, to: &dumped)
        for printed in [error.description, "\(error)", dumped] {
            #expect(!printed.contains("verysecret123"), "\(printed)")
        }
        #expect(error.description.contains("passphrase=***"), "\(error)")
    }
}
