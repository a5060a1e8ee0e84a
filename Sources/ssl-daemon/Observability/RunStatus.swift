import Foundation

/// What the daemon is doing now: one document for `status.json` in the state directory (rewritten
/// every second), `GET /api/status`, the status page and `/metrics`. The summary printed at exit
/// has the same counters. Schema in the README ("Status document").
struct RunStatus: Encodable, Sendable {
    struct Live: Encodable, Sendable {
        /// The source's name in metrics: its `[streams.NAME]`, or live-0, live-1, ... for
        /// `sources.streams` in configuration order.
        var name: String
        /// The URL with credentials and secrets redacted.
        var url: String
        var connected: Bool
        /// Connections made so far (the first one included).
        var connections: Int
        var reconnects: Int
        var frames: Int
        var dropped_frames: Int
        /// Frames per second over the last few seconds.
        var fps: Double?
        /// Seconds since the last frame (nil before the first).
        var last_frame_age_seconds: Double?
        /// Why the last connection ended, if one did.
        var last_error: String?
        /// Seconds from losing the stream to its next frame, at the last recovery (nil before one).
        var last_recovery_seconds: Double?
        /// Attempts in a row that brought no frame (0 while frames flow).
        var failed_attempts: Int
    }
    struct Files: Encodable, Sendable {
        var ok: Int, bad: Int, failed: Int, pending: Int
    }
    struct Buffer: Encodable, Sendable {
        var entries: Int, bytes: Int, byte_limit: Int, evictions: Int
    }
    struct Checkpoint: Encodable, Sendable {
        var path: String
        /// Seconds since 1970 when it became durable, and how long the write took.
        var time: Double?
        var seconds: Double?
    }
    var pid: Int32
    var version: String
    /// "training" (steps advanced lately), "waiting" (for data), "stopping".
    var state: String
    var step: Int
    var pairs_trained: Int
    /// Examples trained on, by kind (this run).
    var trained: RunSummary.Pairs
    /// Examples produced by pairing, by kind (this run).
    var pairs: RunSummary.Pairs
    /// Examples per second into training, over the last few seconds.
    var pairs_per_second: Double?
    var files: Files
    var dropped_frames: Int
    var skipped_updates: Int
    var checkpoint: String?
    var last_checkpoint: Checkpoint?
    var checkpoint_failures: Int
    var buffer: Buffer
    var training: TrainingSignals
    var live: [Live]
    /// Seconds since the trainer last stepped or woke up idle.
    var heartbeat_age_seconds: Double
    /// Where the HTTP endpoint listens (nil: off, or not bound yet).
    var http: String?
    var uptime_seconds: Double
    /// When this was written (ISO 8601).
    var updated: String
    /// The recorded scalars (`/api/status` only; the file leaves them out).
    var history: [ScalarRecord]?
    var retrieval: RetrievalPanel?
}
