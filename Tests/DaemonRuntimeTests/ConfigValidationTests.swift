import DaemonRuntime
import Foundation
import Testing

@Suite("Config: every key's range, cross-key checks, implied memory, readable errors")
struct ConfigValidationTests {
    /// The error `validate()` gives for `toml` over the defaults, or nil when it is valid.
    static func problem(_ toml: String, memoryLimit: Int = 24 << 30) -> String? {
        do {
            try DaemonConfig.load(toml: toml, origin: "test").validate(memoryLimit: memoryLimit)
            return nil
        } catch {
            return error.description
        }
    }

    @Test("out-of-range, non-finite and absurd values are refused, naming the key, the value and the range", arguments: [
        ("grace_seconds = inf", "grace_seconds"), ("grace_seconds = 1e300", "grace_seconds"), ("grace_seconds = nan", "grace_seconds"),
        ("[objective]\nqueue = 100000000", "objective.queue"), ("[model]\nembedding = 1000000000", "model.embedding"),
        ("[model]\nprojection_hidden = 1000000000", "model.projection_hidden"),
        ("[pairing.image]\noutput_size = 100000", "pairing.image.output_size"), ("[pairing.image]\noutput_size = 0", "pairing.image.output_size"),
        ("[pairing.image]\noutput_size = 1", "pairing.image.output_size"), ("[pairing.mix]\ntemporal = nan", "pairing.mix.temporal"),
        ("[optimizer]\nlearning_rate = inf", "optimizer.learning_rate"), ("[pairing]\nmax_tracks = -1", "pairing.max_tracks"),
        ("[pairing]\nmin_track_confidence = nan", "pairing.min_track_confidence"), ("[pairing.image]\nflip_probability = 5", "pairing.image.flip_probability"),
        ("[checkpoint]\nevery = inf", "checkpoint.every"), ("[checkpoint]\nkeep = 0", "checkpoint.keep"),
        ("[sources]\nlive_timeout = -1", "sources.live_timeout"), ("[training]\nbatch = 1", "training.batch"),
        ("[decode]\nfps = 1e9", "decode.fps"), ("[pairing]\nbuffer_bytes = 10", "pairing.buffer_bytes"),
        ("[pairing.image]\nhue = 0.9", "pairing.image.hue"), ("[objective]\nkey_momentum = 1", "objective.key_momentum"),
    ])
    func rangeErrors(toml: String, key: String) throws {
        let message = try #require(Self.problem(toml), "\(toml) was accepted")
        #expect(message.contains(key), "\(message)")
        #expect(message.contains("valid is") || message.contains("must be"), "\(message)")
    }

    @Test("choice settings are enums: valid names load as cases, others are refused listing every valid one")
    func choices() throws {
        let c = try DaemonConfig.load(toml: "log_level = \"debug\"\n[model]\nvideo = \"resnet-small\"\n[objective]\nkind = \"vicreg\"\n[optimizer]\nkind = \"adamw\"", origin: "test")
        #expect(c.logLevel == .debug && c.videoArchitecture == .resnetSmall && c.objective == .vicreg && c.optimizer == .adamw)
        for (toml, key, valid) in [
            ("[objective]\nkind = \"simclr\"", "objective.kind", "moco, infonce, vicreg"),
            ("[model]\nvideo = \"audio\"", "model.video", "reference, resnet-small"),
            ("log_level = 3", "log_level", "trace, debug, info, notice, warning, error, critical"),
        ] {
            let error = #expect(throws: ConfigError.self) { _ = try DaemonConfig.load(toml: toml, origin: "test") }
            #expect(error.map { "\($0)".contains("'\(key)'") && "\($0)".contains(valid) } == true, "\(String(describing: error))")
        }
    }

    @Test("--print-config prints every number as written: a Float 0.6 is 0.6, and the printed config loads back equal")
    func numbersAsWritten() throws {
        let c = try DaemonConfig.load(toml: "[pairing.image]\nflip_probability = 0.6\nbrightness = 0.35\n[objective]\ntemperature = 0.07", origin: "test")
        let printed = c.toml()
        #expect(printed.contains("flip_probability = 0.6  #"), "\(printed.split(separator: "\n").filter { $0.contains("flip_probability") })")
        #expect(printed.contains("brightness = 0.35  #"))
        #expect(printed.contains("temperature = 0.07  #"))
        let noisy = printed.split(separator: "\n").filter { line in
            line.split(separator: "#").first.map { $0.contains("00000") || $0.contains("99999") } ?? false
        }
        #expect(noisy.isEmpty, "values printed with float noise: \(noisy)")
        let reloaded = try DaemonConfig.load(toml: printed, origin: "printed")
        #expect(reloaded.toml() == printed)
    }

    @Test("cross-key checks: mix all zero, far <= near, patch larger than the frame, backoff cap below its start")
    func crossKey() {
        #expect(Self.problem("[pairing.mix]\ntemporal = 0\ntracked = 0\naudio_video = 0")?.contains("all 0") == true)
        #expect(Self.problem("[pairing]\nnear = 5\nfar = 4")?.contains("pairing.far") == true)
        #expect(Self.problem("[decode]\nsize = 64\n[pairing]\npatch_size = 128")?.contains("pairing.patch_size") == true)
        #expect(Self.problem("[sources]\nbackoff_initial = 10\nbackoff_max = 5")?.contains("sources.backoff_max") == true)
    }

    @Test("settings that need more memory than the machine allows are refused, naming the keys")
    func impliedMemory() throws {
        #expect(Self.problem("") == nil)
        let big = try #require(Self.problem("[pairing]\nbuffer_bytes = 1099511627776"))
        #expect(big.contains("pairing.buffer_bytes") && big.contains("GiB"), "\(big)")
        let activations = try #require(Self.problem("[training]\nbatch = 4096\n[pairing.image]\noutput_size = 512"))
        #expect(activations.contains("output_size"), "\(activations)")
        // The defaults fit in 2 GiB; a 1 GiB limit (a cgroup) is too small for them.
        #expect(Self.problem("", memoryLimit: 2 << 30) == nil)
        #expect(Self.problem("", memoryLimit: 256 << 20) != nil)
    }

    @Test("streams that are not live sources are refused at start, with secrets redacted", arguments: [
        "gopher://example.com/x", "file:///tmp/x.mp4", "concat:a.mp4|b.mp4", "/tmp/plain/path.mp4", "::::not a url", "",
    ])
    func unsupportedStreams(url: String) throws {
        let toml = "[sources]\nstreams = [\"\(url)\"]"
        let message = try #require(Self.problem(toml), "\(url) was accepted")
        #expect(message.contains("sources.streams"), "\(message)")
    }

    @Test("stream errors never print credentials")
    func streamSecrets() throws {
        let message = try #require(Self.problem("[sources]\nstreams = [\"gopher://user:hunter2@example.com/?token=abc123\"]"))
        #expect(!message.contains("hunter2") && !message.contains("abc123"), "\(message)")
    }

    @Test("live URLs and stdin are accepted")
    func liveStreams() {
        #expect(Self.problem("[sources]\nstreams = [\"udp://127.0.0.1:5000\", \"rtsp://cam/x\", \"srt://127.0.0.1:9000\", \"-\"]") == nil)
    }

    @Test("[streams.NAME] tables: options load, become FFmpeg options, and name the source")
    func streamTables() throws {
        let c = try DaemonConfig.load(toml: """
            [sources]
            streams = ["udp://127.0.0.1:5000"]
            [streams.door]
            url = "rtsp://admin:pw@127.0.0.1:8554/stream1"
            rtsp_transport = "tcp"
            [streams.encoder]
            url = "srt://127.0.0.1:9000"
            srt_latency = 0.25
            srt_passphrase = "0123456789abcdef"
            [streams.cdn]
            url = "https://127.0.0.1/live.m3u8"
            http_headers = ["Authorization: Bearer abc", "X-Client: daemon"]
            """, origin: "test")
        try c.validate()
        #expect(c.liveStreams.map(\.name) == ["live-0", "door", "encoder", "cdn"])
        #expect(c.liveStreams[0].formatOptions.isEmpty)
        #expect(c.namedStreams[0].formatOptions == ["rtsp_transport": "tcp"])
        #expect(c.namedStreams[1].formatOptions == ["latency": "250000", "passphrase": "0123456789abcdef"])
        #expect(c.namedStreams[2].formatOptions == ["headers": "Authorization: Bearer abc\r\nX-Client: daemon\r\n"])
    }

    @Test("a stream option that does not fit its URL, an unknown key, a bad value or a duplicate name is refused at start", arguments: [
        ("[streams.a]\nurl = \"udp://127.0.0.1:1\"\nrtsp_transport = \"tcp\"", "streams.a.rtsp_transport applies to rtsp"),
        ("[streams.a]\nurl = \"rtsp://h/x\"\nsrt_passphrase = \"0123456789\"", "streams.a.srt_passphrase applies to srt"),
        ("[streams.a]\nurl = \"rtsp://h/x\"\nsrt_latency = 1", "streams.a.srt_latency applies to srt"),
        ("[streams.a]\nurl = \"srt://h:1\"\nhttp_headers = [\"X: y\"]", "streams.a.http_headers applies to http"),
        ("[streams.a]\nurl = \"srt://h:1\"\nsrt_passphrase = \"short\"", "10 to 79 characters"),
        ("[streams.a]\nurl = \"srt://h:1\"\nsrt_latency = 100", "streams.a.srt_latency = 100"),
        ("[streams.a]\nurl = \"srt://h:1\"\nsrt_latency = nan", "streams.a.srt_latency"),
        ("[streams.a]\nurl = \"http://h/x\"\nhttp_headers = [\"no colon\"]", "streams.a.http_headers[0]"),
        ("[streams.a]\nurl = \"http://h/x\"\nhttp_headers = [\"X: a\\r\\nInjected: b\"]", "streams.a.http_headers[0]"),
        ("[streams.a]\nurl = \"rtsp://h/x\"\nrtsp_transport = \"quic\"", "one of auto, udp, tcp, http"),
        ("[streams.a]\nurl = \"rtsp://h/x\"\ntransport = \"tcp\"", "unknown key 'streams.a.transport'"),
        ("[streams.a]\nrtsp_transport = \"tcp\"", "[streams.a] has no url"),
        ("[streams.a]\nurl = \"/videos/a.mp4\"", "streams.a.url"),
        ("[streams.a]\nurl = 5", "streams.a.url"),
        ("[streams.\"bad name\"]\nurl = \"udp://h:1\"", "stream name"),
        ("[sources]\nstreams = [\"udp://h:1\"]\n[streams.live-0]\nurl = \"udp://h:2\"", "named 'live-0'"),
        ("streams = 3", "'streams' must be tables"),
        ("[streams.a]\nurl = \"udp://h:1\"\n[training]\ndeterministic = true", "training.deterministic"),
    ])
    func streamTableErrors(toml: String, expected: String) throws {
        let message = try #require(Self.problem(toml), "\(toml) was accepted")
        #expect(message.contains(expected), "\(message)")
    }

    @Test("secrets never print: not in errors, not in --print-config (the checkpoint's copy of the config)")
    func streamTableSecrets() throws {
        let text = """
            [sources]
            streams = ["rtsp://admin:hunter2@127.0.0.1/x", "rtmp://127.0.0.1/live/sk_live_77"]
            [streams.enc]
            url = "srt://127.0.0.1:9000?passphrase=inurl-secret-1"
            srt_passphrase = "option-secret-22"
            [streams.cdn]
            url = "https://user:pw-33@127.0.0.1/live.m3u8?token=tok-44"
            http_headers = ["Authorization: Bearer hdr-55"]
            """
        let c = try DaemonConfig.load(toml: text, origin: "test")
        let printed = c.toml()
        for secret in ["hunter2", "sk_live_77", "inurl-secret-1", "option-secret-22", "pw-33", "tok-44", "hdr-55"] {
            #expect(!printed.contains(secret), "\(secret) printed")
        }
        #expect(printed.contains("[streams.enc]") && printed.contains("srt_passphrase = \"***\"") && printed.contains("Authorization: ***"))
        // The masked config still reads back (a checkpoint's config is loaded for its model settings).
        let back = try DaemonConfig.load(toml: printed, origin: "printed")
        #expect(back.namedStreams.map(\.name) == ["enc", "cdn"] && back.queue == c.queue)
        let bad = try #require(Self.problem("[streams.x]\nurl = \"gopher://u:hunter2@h/?token=abc123\""))
        #expect(!bad.contains("hunter2") && !bad.contains("abc123"), "\(bad)")
    }

    @Test("print-config output loads back to the same config and states every numeric key's range")
    func roundTrip() throws {
        var c = DaemonConfig()
        c.queue = 2048
        c.pairing.mix.temporal = 0.7
        c.streams = ["udp://127.0.0.1:1234"]
        let text = c.toml()
        #expect(try DaemonConfig.load(toml: text, origin: "round trip") == c)
        for field in DaemonConfig.fields {
            switch field.range {
            case .integers, .reals: #expect(text.contains("(valid: "), "\(field.key)")
            default: break
            }
        }
    }

    @Test("a config path that is a directory, a device, missing or not UTF-8 gets a plain reason")
    func configFiles() throws {
        func reason(_ path: String) -> String {
            do {
                _ = try DaemonConfig.load(file: path)
                return "loaded"
            } catch {
                return error.description
            }
        }
        #expect(reason("/tmp").contains("is a directory"))
        #expect(reason("/dev/null").contains("not a regular file"))
        #expect(reason("/nonexistent/x.toml").contains("No such file"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let binary = dir.appendingPathComponent("bad.toml")
        try Data([0xff, 0xfe, 0x00, 0x41]).write(to: binary)
        #expect(reason(binary.path).contains("not UTF-8"))
        let wrongType = dir.appendingPathComponent("type.toml")
        try Data("[model]\nembedding = 1e9\n".utf8).write(to: wrongType)
        #expect(reason(wrongType.path).contains("model.embedding"))
    }
}
