import Foundation
import Synchronization
import TemporalContrast

/// The latest training signals, as `/api/status`, `/metrics` and the status page report them.
/// Values not measured yet (or not finite) are nil.
struct TrainingSignals: Sendable, Encodable {
    var step = 0
    var loss: Float?
    var image_loss: Float?
    var audio_loss: Float?
    /// ln(K + 1) for the K negatives of the image objective: the loss of a uniform guess.
    var chance_loss: Float?
    var accuracy: Float?
    var positive_cosine: Float?
    var negative_cosine: Float?
    /// Std of the L2-normalised embeddings × √d: about 1 when they spread, near 0 when collapsed.
    var std_ratio: Float?
    var effective_rank: Float?
    var alignment: Float?
    var uniformity: Float?
    var learning_rate: Float?
    var step_seconds: Double?
    var queue_entries: Int?
    var queue_capacity: Int?
    var knn_accuracy: Float?
    var knn_step: Int?
    var collapse = false
    /// Why the collapse alarm is raised.
    var collapse_reason: String?
    /// Embedding width d (the healthy std is about 1/√d).
    var embedding_dimension: Int?
}

/// The status page's nearest-neighbour panel: recent frames from the replay buffer, each with its
/// nearest neighbours among a sample of the buffer under the encoder of `step`.
struct RetrievalPanel: Sendable, Encodable {
    struct Item: Sendable, Encodable {
        /// A small PNG, base64.
        var png: String
        var source: Int
        var time: Double
        /// Cosine to the query (nil for the query itself).
        var cosine: Float?
    }
    struct Query: Sendable, Encodable {
        var query: Item
        var neighbours: [Item]
    }
    var step: Int
    /// Seconds since 1970.
    var time: Double
    var queries: [Query]
}

/// A bounded history of scalar records: when full, every other record is dropped, so the history
/// always spans the whole run (older stretches at coarser resolution).
struct ScalarHistory: Sendable {
    let capacity: Int
    private(set) var records: [ScalarRecord] = []

    init(capacity: Int) { self.capacity = max(16, capacity) }

    mutating func append(_ record: ScalarRecord) {
        if records.count >= capacity {
            records = records.enumerated().compactMap { $0.offset % 2 == 1 ? $0.element : nil }
        }
        records.append(record)
    }
}

/// What the trainer's observer publishes and the reporters read: the latest signals, their
/// history and the retrieval panel, each behind its own small lock (held only to copy).
final class SignalBoard: Sendable {
    private let signalsBox = Mutex(TrainingSignals())
    private let historyBox: Mutex<ScalarHistory>
    private let retrievalBox = Mutex<RetrievalPanel?>(nil)
    let tensorboard: TensorBoardWriter?
    /// Every step's duration goes here (the metrics' histogram).
    let recordStepDuration: @Sendable (Duration) -> Void

    init(historyCapacity: Int, tensorboard: TensorBoardWriter?, recordStepDuration: @escaping @Sendable (Duration) -> Void) {
        historyBox = Mutex(ScalarHistory(capacity: historyCapacity))
        self.tensorboard = tensorboard
        self.recordStepDuration = recordStepDuration
    }

    var signals: TrainingSignals { signalsBox.withLock { $0 } }
    var history: [ScalarRecord] { historyBox.withLock { $0.records } }
    var retrieval: RetrievalPanel? { retrievalBox.withLock { $0 } }

    func publish(_ signals: TrainingSignals) { signalsBox.withLock { $0 = signals } }
    func publish(_ panel: RetrievalPanel) { retrievalBox.withLock { $0 = panel } }

    func record(_ record: ScalarRecord) {
        historyBox.withLock { $0.append(record) }
        tensorboard?.record(record)
    }
}

/// A finite value, or nil.
func finite(_ x: Float?) -> Float? { x.flatMap { $0.isFinite ? $0 : nil } }
