import Foundation
import StreamDecode
import TemporalContrast

/// A config problem, always naming the key (or the file) at fault.
package struct ConfigError: Error, CustomStringConvertible {
    package var description: String

    package init(description: String) { self.description = description }
}

extension DaemonConfig {
    private static let fieldsByKey = Dictionary(uniqueKeysWithValues: fields.map { ($0.key, $0) })
    private static let sections: Set<String> = Set(fields.compactMap { f in
        f.key.contains(".") ? String(f.key[..<f.key.lastIndex(of: ".")!]) : nil
    })

    /// Reads a TOML file over the defaults. Unknown keys and values of the wrong type are errors.
    package static func load(file: String) throws(ConfigError) -> DaemonConfig {
        let text: String
        do { text = try TextFile.read(file, limit: 1 << 20) } catch {
            throw ConfigError(description: "config \(file): \(error.reason)")
        }
        return try load(toml: text, origin: file)
    }

    /// Parses TOML text over the defaults; `origin` names it in errors (a file, a checkpoint).
    package static func load(toml text: String, origin: String) throws(ConfigError) -> DaemonConfig {
        let table: [(key: String, value: TOMLValue)]
        do { table = try TOMLReader.parse(text) } catch {
            throw ConfigError(description: "config \(origin): not valid TOML: \(error)")
        }
        var config = DaemonConfig()
        try config.apply(table, prefix: "", file: origin)
        return config
    }

    private mutating func apply(_ table: [(key: String, value: TOMLValue)], prefix: String, file: String) throws(ConfigError) {
        for (name, value) in table {
            let key = prefix.isEmpty ? name : "\(prefix).\(name)"
            if key == "streams" {
                guard case .table(let named) = value else { throw ConfigError(description: "config \(file): 'streams' must be tables [streams.NAME]") }
                for (streamName, body) in named {
                    guard case .table(let settings) = body else {
                        throw ConfigError(description: "config \(file): 'streams.\(streamName)' must be a table [streams.\(streamName)] with a url")
                    }
                    namedStreams.append(try StreamSettings.read(name: streamName, table: settings, origin: file))
                }
                continue
            }
            if case .table(let sub) = value {
                guard Self.sections.contains(key) else { throw ConfigError(description: "config \(file): unknown section [\(key)]") }
                try apply(sub, prefix: key, file: file)
                continue
            }
            guard let field = Self.fieldsByKey[key] else { throw ConfigError(description: "config \(file): unknown key '\(key)'") }
            func bad(_ expected: String) -> ConfigError { ConfigError(description: "config \(file): key '\(key)' must be \(expected)") }
            switch (field.kind, value) {
            case (.int(let path), .integer(let v)): self[keyPath: path] = v
            case (.int, _): throw bad("an integer")
            case (.double(let path), .float(let v)): self[keyPath: path] = v
            case (.double(let path), .integer(let v)): self[keyPath: path] = Double(v)
            case (.double, _): throw bad("a number")
            case (.float(let path), .float(let v)): self[keyPath: path] = Float(v)
            case (.float(let path), .integer(let v)): self[keyPath: path] = Float(v)
            case (.float, _): throw bad("a number")
            case (.method(let k, true), .integer(let v)): methodSettings[k] = Double(v)
            case (.method(_, true), _): throw bad("an integer")
            case (.method(let k, false), .float(let v)): methodSettings[k] = v
            case (.method(let k, false), .integer(let v)): methodSettings[k] = Double(v)
            case (.method, _): throw bad("a number")
            case (.string(let path), .string(let v)): self[keyPath: path] = v
            case (.string, _): throw bad("a string")
            case (.bool(let path), .bool(let v)): self[keyPath: path] = v
            case (.bool, _): throw bad("true or false")
            case (.strings(let path), .array(let items)):
                var out: [String] = []
                for item in items {
                    guard case .string(let v) = item else { throw bad("an array of strings") }
                    out.append(v)
                }
                self[keyPath: path] = out
            case (.strings, _): throw bad("an array of strings")
            case (.choice(let c), .string(let v)):
                guard c.set(&self, v) else { throw bad("one of \(c.values.joined(separator: ", ")), not \(DaemonConfig.quoted(v))") }
            case (.choice(let c), _): throw bad("a string, one of \(c.values.joined(separator: ", "))")
            }
        }
    }

    /// The effective config as TOML, every key with its value, what it is and its valid range.
    /// Secrets are masked (URL credentials, passphrases, header values): this is what
    /// `--print-config` shows and what checkpoints keep, and neither may hold a secret.
    package func toml() -> String {
        var out = "# ssl-daemon configuration (every key, with its effective value)\n"
        var section = ""
        for field in Self.fields {
            let parts = field.key.split(separator: ".")
            let fieldSection = parts.dropLast().joined(separator: ".")
            if fieldSection != section {
                section = fieldSection
                out += "\n[\(section)]\n"
            }
            let range: String
            switch field.range {
            case .any: range = ""
            case .choice(let values): range = " (one of: \(values.joined(separator: ", ")))"
            case .integers, .reals: range = " (valid: \(field.range))"
            }
            out += "\(parts.last!) = \(field.formatted(in: self, redacted: true))  # \(field.help)\(range)\n"
        }
        if namedStreams.isEmpty {
            out += "\n# [streams.NAME]: a live stream with options of its own; NAME labels its metrics. Keys:\n"
            for (key, help) in StreamSettings.keys { out += "#   \(key): \(help)\n" }
            out += "# [streams.door]\n# url = \"rtsp://user:password@192.0.2.10:554/stream1\"\n# rtsp_transport = \"tcp\"\n"
        }
        for stream in namedStreams { out += stream.redactedTOML }
        return out
    }

    /// Every key's range, then the checks across keys, then the memory the settings imply. The
    /// message names the key (and its flag), the value and what is valid.
    package func validate(memoryLimit: Int = System.memoryLimit) throws(ConfigError) {
        for field in Self.fields {
            let name = field.flag.map { "\(field.key) (\($0))" } ?? field.key
            if let x = field.number(in: self), !field.range.contains(x) {
                throw ConfigError(description: "config: \(name) = \(field.formatted(in: self)) is out of range: valid is \(field.range)")
            }
        }
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws(ConfigError) {
            if !ok { throw ConfigError(description: "config: \(message())") }
        }
        try check(!stateDir.isEmpty, "state_dir (--state-dir) must not be empty")
        try check(backoffMax >= backoffInitial, "sources.backoff_max = \(backoffMax) must be >= sources.backoff_initial = \(backoffInitial)")
        try check(retryMax >= retryInitial, "sources.retry_max = \(retryMax) must be >= sources.retry_initial = \(retryInitial)")
        try check(pairing.far > pairing.near, "pairing.far = \(pairing.far) must be greater than pairing.near = \(pairing.near)")
        try check(pairing.historySeconds >= pairing.far, "pairing.history_seconds = \(pairing.historySeconds) must be at least pairing.far = \(pairing.far)")
        try check(pairing.patchSize % 2 == 0 && pairing.patchSize <= size, "pairing.patch_size = \(pairing.patchSize) must be even and at most decode.size = \(size)")
        let mix = pairing.mix
        try check(mix.temporal + mix.tracked + mix.audioVideo > 0, "pairing.mix.temporal, pairing.mix.tracked and pairing.mix.audio_video are all 0: no pair kind would be trained")
        let live = liveStreams
        try check(!deterministic || live.isEmpty, "training.deterministic works with file sources only (sources.streams and [streams.*] must be empty)")
        for stream in namedStreams { try stream.validate() }
        var names: Set<String> = []
        for stream in live where !names.insert(stream.name).inserted {
            throw ConfigError(description: "config: two live streams are named '\(stream.name)' (the names live-N belong to sources.streams)")
        }
        for location in streams {
            let source: MediaSource
            do { source = try MediaSource(location) } catch {
                throw ConfigError(description: "config: sources.streams (--stream) '\(MediaSource.redacted(location))' is not supported: \(error.message)")
            }
            try check(source.isLive, """
                sources.streams (--stream) '\(MediaSource.redacted(location))' is not a live source URL: \
                use a udp, rtp, tcp, rtsp, rtmp, http(s) or srt URL, or - for stdin (files and directories go in sources.watch / --watch)
                """)
        }
        if let message = pairing.validationError() { throw ConfigError(description: "config: \(message)") }
        let needed = impliedMemory
        let total = needed.reduce(0) { $0 + $1.bytes }
        if total > memoryLimit / 10 * 9 {
            let parts = needed.sorted { $0.bytes > $1.bytes }.map { "\($0.what) \(Self.gibibytes($0.bytes))" }.joined(separator: ", ")
            throw ConfigError(description: "config: these settings need about \(Self.gibibytes(total)) of memory (\(parts)), more than the \(Self.gibibytes(memoryLimit / 10 * 9)) this machine allows (90 % of \(Self.gibibytes(memoryLimit))): lower them")
        }
    }

    /// What the settings imply in memory, by the keys responsible: a conservative estimate of the
    /// large allocations (the replay buffer, the key queue and its logits, live queues, and the
    /// activations of one training step).
    package var impliedMemory: [(what: String, bytes: Int)] {
        // Sizes are clamped before multiplying so absurd values cannot overflow.
        func m(_ xs: Int...) -> Int { xs.reduce(1) { $0.multipliedReportingOverflow(by: max(0, $1)).overflow ? Int.max / 4 : $0 * max(0, $1) } }
        let side = pairing.image.outputSize
        // Per image and pass: about 100 floats of activations, im2col columns and gradients per
        // input pixel for the reference encoder (measured from its layer shapes), twice that for
        // resnet-small; up to two images per example.
        let perPixel = videoArchitecture == .resnetSmall ? 200 : 100
        let activations = m(2, batch, side, side, perPixel, 4)
        let head = m(batch, 3, max(projectionHidden, embedding), 4 * 4)
        let queueBytes = objective == .moco ? m(queue, embedding, 4) + m(3, batch, queue, 4) : 0
        let bank = Int(methodSettings["pirl_bank"]), negatives = Int(methodSettings["pirl_negatives"])
        // The bank with each slot's origin, each pair's logits and negative indices per view, and
        // the scores of the whole bank when the loss computes them.
        let scores = MemoryBankNCELoss.scoresWholeBank(rows: batch, candidates: negatives + 1, instances: bank) ? m(batch, bank, 4) : 0
        let bankBytes = objective == .pirl ? m(bank, embedding + 4, 4) + m(4, batch, negatives + 1, 8) + scores : 0
        let frame = m(size, size * 16 / 9, 3)
        let live = m(liveQueueFrames, liveStreams.count, frame)
        let parameters = m(max(projectionHidden, embedding), max(projectionHidden, embedding), 4 * 8)
        return [
            ("pairing.buffer_bytes", min(pairing.bufferBytes, Int.max / 4)),
            ("training.batch × pairing.image.output_size² (activations)", activations),
            ("model.projection_hidden × model.embedding (heads)", head + parameters),
            ("objective.queue × model.embedding", queueBytes),
            ("objective.pirl_bank × model.embedding", bankBytes),
            ("sources.live_queue_frames × decode.size²", live),
        ]
    }

    private static func gibibytes(_ bytes: Int) -> String { String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) }
}
