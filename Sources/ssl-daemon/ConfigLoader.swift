import Foundation
import TOMLKit
import TemporalContrast

/// A config problem, always naming the key (or the file) at fault.
struct ConfigError: Error, CustomStringConvertible {
    var description: String
}

extension DaemonConfig {
    private static let fieldsByKey = Dictionary(uniqueKeysWithValues: fields.map { ($0.key, $0) })
    private static let sections: Set<String> = Set(fields.compactMap { f in
        f.key.contains(".") ? String(f.key[..<f.key.lastIndex(of: ".")!]) : nil
    })

    /// Reads a TOML file over the defaults. Unknown keys and values of the wrong type are errors.
    static func load(file: String) throws -> DaemonConfig {
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            throw ConfigError(description: "config \(file): cannot read: \(error.localizedDescription)")
        }
        return try load(toml: text, origin: file)
    }

    /// Parses TOML text over the defaults; `origin` names it in errors (a file, a checkpoint).
    static func load(toml text: String, origin: String) throws -> DaemonConfig {
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch {
            throw ConfigError(description: "config \(origin): not valid TOML: \(error)")
        }
        var config = DaemonConfig()
        try config.apply(table, prefix: "", file: origin)
        return config
    }

    private mutating func apply(_ table: TOMLTable, prefix: String, file: String) throws {
        for (name, value) in table {
            let key = prefix.isEmpty ? name : "\(prefix).\(name)"
            if let sub = value.table {
                guard Self.sections.contains(key) else { throw ConfigError(description: "config \(file): unknown section [\(key)]") }
                try apply(sub, prefix: key, file: file)
                continue
            }
            guard let field = Self.fieldsByKey[key] else { throw ConfigError(description: "config \(file): unknown key '\(key)'") }
            func bad(_ expected: String) -> ConfigError { ConfigError(description: "config \(file): key '\(key)' must be \(expected)") }
            switch field.kind {
            case .int(let path):
                guard let v = value.int else { throw bad("an integer") }
                self[keyPath: path] = v
            case .double(let path):
                guard let v = value.double ?? value.int.map(Double.init) else { throw bad("a number") }
                self[keyPath: path] = v
            case .float(let path):
                guard let v = value.double ?? value.int.map(Double.init) else { throw bad("a number") }
                self[keyPath: path] = Float(v)
            case .string(let path):
                guard let v = value.string else { throw bad("a string") }
                self[keyPath: path] = v
            case .bool(let path):
                guard let v = value.bool else { throw bad("true or false") }
                self[keyPath: path] = v
            case .strings(let path):
                guard let array = value.array else { throw bad("an array of strings") }
                var out: [String] = []
                for element in array {
                    guard let s = element.string else { throw bad("an array of strings") }
                    out.append(s)
                }
                self[keyPath: path] = out
            }
        }
    }

    /// The effective config as TOML, every key with its value and a comment saying what it is.
    func toml() -> String {
        var out = "# ssl-daemon configuration (every key, with its effective value)\n"
        var section = ""
        for field in Self.fields {
            let parts = field.key.split(separator: ".")
            let fieldSection = parts.dropLast().joined(separator: ".")
            if fieldSection != section {
                section = fieldSection
                out += "\n[\(section)]\n"
            }
            let value: String
            switch field.kind {
            case .int(let p): value = String(self[keyPath: p])
            case .double(let p): value = Self.number(self[keyPath: p])
            case .float(let p): value = Self.number(Double(self[keyPath: p]))
            case .string(let p): value = Self.quoted(self[keyPath: p])
            case .bool(let p): value = String(self[keyPath: p])
            case .strings(let p): value = "[" + self[keyPath: p].map(Self.quoted).joined(separator: ", ") + "]"
            }
            out += "\(parts.last!) = \(value)  # \(field.help)\n"
        }
        return out
    }

    private static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(format: "%.1f", x) : String(x)
    }

    private static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// Range checks; the message names the key.
    func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ConfigError(description: "config: \(message)") } }
        try check(epochs >= 1, "sources.epochs must be at least 1")
        try check(pollInterval > 0 && settleSeconds >= 0, "sources.poll_interval must be > 0 and sources.settle_seconds >= 0")
        try check(liveTimeout > 0 && liveTimeout <= 86_400, "sources.live_timeout must be in (0, 86400]")
        try check(stallSeconds > 0, "sources.stall_seconds must be > 0")
        try check(backoffInitial > 0 && backoffMax >= backoffInitial, "sources.backoff_max must be >= sources.backoff_initial > 0")
        try check(liveQueueFrames >= 1, "sources.live_queue_frames must be at least 1")
        try check(size >= 32 && size <= 1024, "decode.size must be in 32...1024")
        try check(fps >= 0 && fps <= 240, "decode.fps must be in 0...240")
        try check(decoderThreads >= 1 && decoderThreads <= 64, "decode.decoder_threads must be in 1...64")
        try check(sampleRate >= 8_000 && sampleRate <= 48_000, "decode.sample_rate must be in 8000...48000")
        try check(melBands >= 8 && melBands <= 256, "decode.mel_bands must be in 8...256")
        try check(BackboneArchitecture(rawValue: videoArchitecture).map { $0 != .audio } ?? false, "model.video must be reference or resnet-small, got '\(videoArchitecture)'")
        try check(audioArchitecture == BackboneArchitecture.audio.rawValue, "model.audio must be audio, got '\(audioArchitecture)'")
        try check(projectionHidden >= 1 && embedding >= 1, "model.projection_hidden and model.embedding must be positive")
        try check(["moco", "infonce", "vicreg"].contains(objective), "objective.kind must be moco, infonce or vicreg, got '\(objective)'")
        try check(temperature > 0 && temperature <= 10, "objective.temperature must be in (0, 10]")
        try check(queue >= 1, "objective.queue must be at least 1")
        try check(keyMomentum >= 0 && keyMomentum < 1, "objective.key_momentum must be in [0, 1)")
        try check(audioWeight >= 0, "objective.audio_weight must be >= 0")
        try check(maskWindow >= 0, "objective.mask_window must be >= 0")
        try check(["sgd", "adamw"].contains(optimizer), "optimizer.kind must be sgd or adamw, got '\(optimizer)'")
        try check(learningRate > 0, "optimizer.learning_rate must be > 0")
        try check(sgdMomentum >= 0 && sgdMomentum < 1, "optimizer.momentum must be in [0, 1)")
        try check(weightDecay >= 0, "optimizer.weight_decay must be >= 0")
        try check(warmupSteps >= 0, "optimizer.warmup_steps must be >= 0")
        try check(maxGradientNorm >= 0, "optimizer.max_gradient_norm must be >= 0")
        try check(batch >= 2 && batch <= 4096, "training.batch must be in 2...4096")
        try check(threads >= 0 && threads <= 256, "training.threads must be in 0...256")
        try check(maxReuse >= 1, "training.max_reuse must be at least 1")
        try check(seed >= 0, "training.seed must be >= 0")
        try check(!deterministic || streams.isEmpty, "training.deterministic works with file sources only (sources.streams must be empty)")
        try check(checkpointEvery > 0, "checkpoint.every must be > 0")
        try check(keep >= 1, "checkpoint.keep must be at least 1")
        try check(graceSeconds > 0, "grace_seconds must be > 0")
        try check(["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel), "log_level must be one of trace, debug, info, notice, warning, error, critical")
        if let message = pairing.validationError() { throw ConfigError(description: "config: \(message)") }
    }
}
