import DaemonRuntime
import Foundation
import Logging
import Synchronization
import TemporalContrast

/// The kNN monitor's labelled folder (`monitor.labelled`): one subfolder per class, each holding
/// short clips or images. Decoded once, on a thread of its own at start (training does not wait
/// for it), into evaluation inputs: up to `windowsPerItem` one-second windows per file, the frame
/// nearest each window's centre, as `export`'s manifest describes. An item's feature is the mean
/// of its windows' backbone features. Files that do not decode are skipped with a warning naming
/// them; the monitor runs on what is left.
final class LabelledSet: Sendable {
    static let windowsPerItem = 8

    private struct Loaded: Sendable {
        var inputs: [[Float]]
        var labels: [Int]
        var classes: [String]
    }
    private let loaded = Shared<Loaded?>(nil)
    let root: String
    /// Side of the square network input, pixels.
    private let side: Int

    init(root: String, config: DaemonConfig, logger: Logger) {
        self.root = root
        let side = config.encoderInput.video.side
        self.side = side
        Thread.detachNewThread { [loaded] in
            let result = Self.load(root: root, config: config, side: side, logger: logger)
            loaded.value = result
        }
    }

    var isReady: Bool { loaded.value != nil }
    var count: Int { loaded.value?.labels.count ?? 0 }

    /// Leave-one-out weighted-kNN accuracy of `network`'s backbone features; nil until loaded,
    /// or when fewer than two items of two classes decoded.
    func accuracy(of network: EmbeddingNetwork, k: Int, temperature: Float) -> Float? {
        guard let set = loaded.value, set.labels.count >= 2, Set(set.labels).count >= 2 else { return nil }
        var features: [Float] = [], dimension = 0
        for windows in set.inputs {
            let n = windows.count / (side * side * 3)
            let f = network.features(Tensor(shape: [n, side, side, 3], storage: windows))
            dimension = f.itemSize
            var mean = [Float](repeating: 0, count: dimension)
            for i in 0..<n { for j in 0..<dimension { mean[j] += f.storage[i * dimension + j] / Float(n) } }
            features += mean
        }
        return WeightedKNN.leaveOneOutAccuracy(features: features, dimension: dimension, labels: set.labels, k: k, temperature: temperature)
    }

    private static func load(root: String, config: DaemonConfig, side: Int, logger: Logger) -> Loaded {
        var out = Loaded(inputs: [], labels: [], classes: [])
        let classes = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .filter { name in
                var isDirectory: ObjCBool = false
                return !name.hasPrefix(".") && FileManager.default.fileExists(atPath: (root as NSString).appendingPathComponent(name), isDirectory: &isDirectory) && isDirectory.boolValue
            }
            .sorted()
        if classes.count < 2 {
            logger.error("kNN monitor off: the labelled folder needs a subfolder per class, at least two", metadata: ["folder": "\(root)", "classes": "\(classes.count)"])
        }
        out.classes = classes
        for (label, name) in classes.enumerated() {
            for file in DirectoryWalker.walk((root as NSString).appendingPathComponent(name)).files {
                do {
                    let windows = try VideoWindows.inputs(file.path, window: 1, config: config)
                    guard !windows.isEmpty else { throw DaemonError.media(file.path, "no video frame") }
                    let picked = stride(from: 0, to: windows.count, by: max(1, windows.count / windowsPerItem)).prefix(windowsPerItem)
                    out.inputs.append(picked.flatMap { hwc(fromCHW: windows[$0].input, side: side) })
                    out.labels.append(label)
                } catch {
                    logger.warning("kNN monitor: skipping a labelled file", metadata: ["file": "\(file.path)", "error": "\(error)"])
                }
            }
        }
        logger.info("kNN monitor ready", metadata: ["folder": "\(root)", "classes": "\(classes.count)", "items": "\(out.labels.count)"])
        return out
    }

    private static func hwc(fromCHW chw: [Float], side: Int) -> [Float] {
        let plane = side * side
        var out = [Float](repeating: 0, count: chw.count)
        for i in 0..<plane { for c in 0..<3 { out[i * 3 + c] = chw[c * plane + i] } }
        return out
    }
}
