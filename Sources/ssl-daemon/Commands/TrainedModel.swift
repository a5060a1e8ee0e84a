import DaemonRuntime
import Foundation
import TemporalContrast

/// A checkpoint opened for downstream use: its encoders and the config it was trained with (read
/// from its metadata), which fixes the input sizes and preprocessing.
struct TrainedModel {
    let url: URL
    let file: SafeTensors
    let config: DaemonConfig
    let step: Int
    let video: ExportedEncoder
    /// Nil when the checkpoint was trained without audio (`objective.audio_weight = 0`).
    let audio: ExportedEncoder?

    /// `path` is a checkpoint file, a state directory, or a checkpoints directory. In a directory
    /// the newest checkpoint whose encoders load is used; each one skipped is named with its reason.
    init(from path: String) throws(DaemonError) {
        let candidates = CheckpointStore.candidates(URL(fileURLWithPath: path))
        guard !candidates.isEmpty else { throw .noCheckpoint(path) }
        var reasons: [String] = []
        for url in candidates {
            do {
                try self.init(checkpoint: url)
                if !reasons.isEmpty {
                    FileHandle.standardError.write(Data("ssl-daemon: skipped newer checkpoints: \(reasons.joined(separator: "; "))\n".utf8))
                }
                return
            } catch {
                if candidates.count == 1 { throw error }
                reasons.append("\(error)")
            }
        }
        throw .noUsableCheckpoint(path, reasons: reasons)
    }

    private init(checkpoint url: URL) throws(DaemonError) {
        let file: SafeTensors
        do { file = try CheckpointStore.load(url) } catch { throw .checkpoint(url, .unreadable(error)) }
        guard let toml = file.metadata["config"] else { throw .checkpoint(url, .noConfig) }
        let config: DaemonConfig
        do { config = try DaemonConfig.load(toml: toml, origin: "in checkpoint \(url.path)") } catch {
            throw .checkpoint(url, .config(error))
        }
        let architecture = config.videoArchitecture.backbone
        self.url = url
        self.file = file
        self.config = config
        step = Int(file.metadata["step"] ?? "") ?? 0
        let side = config.pairing.image.outputSize
        do {
            video = try ExportedEncoder(modality: .video, architecture: architecture, height: side, width: side, checkpoint: file)
            audio = file["audio.backbone.conv1.weight"] == nil
                ? nil
                : try ExportedEncoder(modality: .audio, architecture: .audio, height: config.encoderInput.audio.melBands, width: config.encoderInput.audio.frames, checkpoint: file)
        } catch {
            throw .checkpoint(url, .encoder(error))
        }
    }

    func encoder(_ modality: ExportedEncoder.Modality) -> ExportedEncoder? { modality == .video ? video : audio }
}

/// Files written under temporary names in their final directories and renamed into place only
/// when every one is complete, so a failure leaves no partial output behind.
final class StagedOutputs {
    private var staged: [(temporary: URL, final: URL)] = []
    private var createdDirectories: [URL] = []

    /// Makes sure `directory` exists and is writable, creating it (and remembering to remove it on
    /// failure) when missing.
    func prepare(directory: URL) throws(DaemonError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw .outputDirectory(directory.path, "exists and is not a directory") }
        } else {
            do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
                throw .outputDirectory(directory.path, "cannot be created: \(error.localizedDescription)")
            }
            createdDirectories.append(directory)
        }
        guard FileManager.default.isWritableFile(atPath: directory.path) else {
            throw .outputDirectory(directory.path, "is not writable")
        }
    }

    /// Writes `data` to a hidden temporary name beside `url`.
    func write(_ data: Data, to url: URL) throws(DaemonError) {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do { try data.write(to: temporary) } catch {
            throw .outputDirectory(url.deletingLastPathComponent().path, "cannot write \(url.lastPathComponent): \(error.localizedDescription)")
        }
        staged.append((temporary, url))
    }

    /// Renames every staged file into place.
    func commit() throws(DaemonError) {
        for (temporary, final) in staged {
            guard rename(temporary.path, final.path) == 0 else {
                throw .posix("rename from \(temporary.path)", path: final.path)
            }
        }
        staged = []
        createdDirectories = []
    }

    /// Removes whatever was staged (and directories this created) after a failure.
    func discard() {
        for (temporary, _) in staged { try? FileManager.default.removeItem(at: temporary) }
        for directory in createdDirectories.reversed() { try? FileManager.default.removeItem(at: directory) }
        staged = []
        createdDirectories = []
    }
}
