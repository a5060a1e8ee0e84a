import DaemonRuntime
import Foundation
import TemporalContrast

/// A failure of `export` or `embed`: the message names the input and the cause.
struct ExportFailure: Error, CustomStringConvertible {
    var description: String
}

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
    init(from path: String) throws {
        let candidates = CheckpointStore.candidates(URL(fileURLWithPath: path))
        guard !candidates.isEmpty else { throw ExportFailure(description: "no checkpoint at \(path)") }
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
        throw ExportFailure(description: "no usable checkpoint at \(path): \(reasons.joined(separator: "; "))")
    }

    private init(checkpoint url: URL) throws {
        let file: SafeTensors
        do { file = try CheckpointStore.load(url) } catch {
            throw ExportFailure(description: "\(error)")
        }
        guard let toml = file.metadata["config"] else {
            throw ExportFailure(description: "checkpoint \(url.path): no config in its metadata (not written by ssl-daemon run)")
        }
        let config: DaemonConfig
        do { config = try DaemonConfig.load(toml: toml, origin: "in checkpoint \(url.path)") } catch {
            throw ExportFailure(description: "\(error)")
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
                : try ExportedEncoder(modality: .audio, architecture: .audio, height: config.melBands, width: config.melFrames, checkpoint: file)
        } catch {
            throw ExportFailure(description: "checkpoint \(url.path): \(error)")
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
    func prepare(directory: URL) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ExportFailure(description: "output \(directory.path) exists and is not a directory") }
        } else {
            do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
                throw ExportFailure(description: "cannot create output folder \(directory.path): \(error.localizedDescription)")
            }
            createdDirectories.append(directory)
        }
        guard FileManager.default.isWritableFile(atPath: directory.path) else {
            throw ExportFailure(description: "output folder \(directory.path) is not writable")
        }
    }

    /// Writes `data` to a hidden temporary name beside `url`.
    func write(_ data: Data, to url: URL) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do { try data.write(to: temporary) } catch {
            throw ExportFailure(description: "cannot write \(url.path): \(error.localizedDescription)")
        }
        staged.append((temporary, url))
    }

    /// Renames every staged file into place.
    func commit() throws {
        for (temporary, final) in staged {
            guard rename(temporary.path, final.path) == 0 else {
                throw ExportFailure(description: "cannot move \(temporary.path) to \(final.path): \(String(cString: strerror(errno)))")
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
