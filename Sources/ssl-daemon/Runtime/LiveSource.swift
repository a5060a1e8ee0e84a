import DaemonRuntime
import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import StreamDecode
import Synchronization
import TemporalContrast

/// What one live source did: atomics its threads bump and anyone may read.
final class LiveSourceStatistics: Sendable {
    let connected = Atomic<Bool>(false)
    let connections = Atomic<Int>(0)
    let frames = Atomic<Int>(0)
    let droppedFrames = Atomic<Int>(0)
    /// When the last frame arrived (seconds since 1970), 0 before the first.
    let lastFrameBits = Atomic<UInt64>(0)
    /// Seconds from losing the stream to its next frame, at the last recovery (bit pattern; 0
    /// before the first recovery).
    let lastRecoveryBits = Atomic<UInt64>(0)
    /// Attempts in a row that brought no frame (0 while frames flow).
    let failedAttempts = Atomic<Int>(0)
    /// Why the last connection ended (credentials redacted), if one did.
    let lastError = Mutex<String?>(nil)

    var lastFrame: Double { Double(bitPattern: lastFrameBits.load(ordering: .relaxed)) }
    var lastRecovery: Double? {
        let bits = lastRecoveryBits.load(ordering: .relaxed)
        return bits == 0 ? nil : Double(bitPattern: bits)
    }
}

/// One live stream (a URL or stdin): a reader thread that connects, reads and reconnects with
/// exponential backoff and jitter, a stall timer that forces a reconnect when no frame arrives
/// for `sources.stall_seconds` (connecting included), and its own pairing thread behind a
/// drop-oldest queue, so the reader never waits for pairing or the trainer. Each connection is
/// its own stretch of timeline: nothing pairs across a reconnect. Stdin cannot be reopened: when
/// it ends, the source is finished.
final class LiveSource: Sendable {
    let stream: StreamSettings
    let statistics = LiveSourceStatistics()
    private let source: Int
    private let config: DaemonConfig
    private let options: DecodeOptions
    private let isPipe: Bool
    private let exchange: ExampleExchange
    private let runStatistics: RunStatistics
    private let logger: Logger
    private let queue: DropOldestQueue<MediaItem>
    private let stopRequested = Atomic<Bool>(false)
    /// The interrupt of the connection being made or read, if any.
    private let current = Mutex<DecodeInterrupt?>(nil)
    /// Wakes the backoff sleep at shutdown.
    private let backoff = Monitor(())

    init(stream: StreamSettings, config: DaemonConfig, exchange: ExampleExchange, statistics: RunStatistics, logger: Logger) {
        self.stream = stream
        source = SourceID.of(stream.url)
        self.config = config
        var options = config.decodeOptions(live: true)
        options.formatOptions = stream.formatOptions
        self.options = options
        isPipe = (try? MediaSource(stream.url))?.kind == .pipe
        self.exchange = exchange
        runStatistics = statistics
        self.logger = logger
        queue = DropOldestQueue(capacity: config.liveQueueFrames) { item in
            if case .video = item { return true } else { return false }
        }
        exchange.setProducer(producerName, .active)
    }

    /// The exchange's key for this producer: prefixed, so no stream name can collide with the
    /// file source's.
    private var producerName: String { "live:" + stream.name }

    /// The source's name in metrics, logs and on the status page.
    var name: String { stream.name }
    var location: String { stream.url }
    private var redacted: String { MediaSource.redacted(stream.url) }
    private var isStopping: Bool { stopRequested.load(ordering: .relaxed) }

    /// Ends the reader (interrupting FFmpeg where it blocks) and, once the queue drains, pairing.
    func stop() {
        stopRequested.store(true, ordering: .relaxed)
        current.withLock { $0?.interrupt() }
        backoff.wakeAll()
    }

    /// The reader's loop: connect, read until the stream ends, fails or stalls, back off, repeat.
    func readLoop() {
        var delay = config.backoffInitial
        var connection = 0
        // When frames stopped coming (the end of the last connection that delivered any): the
        // time to recover runs from there to the next frame.
        var lostAt: Date? = nil
        while !isStopping {
            let interrupt = DecodeInterrupt()
            current.withLock { $0 = interrupt }
            // A stop between the check above and publishing the interrupt must still interrupt.
            if isStopping { break }
            let connectedAt = Date()
            var gotFrames = false
            var opened = false
            var refused = false
            // Started before connecting, so a server that accepts and then sends nothing is cut
            // off after stall_seconds too, not only one that stops mid-stream.
            let stall = StallTimer(seconds: config.stallSeconds) { interrupt.interrupt() }
            do throws(DecodeError) {
                let decoder = try MediaDecoder(stream.url, options: options, interrupt: interrupt)
                opened = true
                logger.info("live source connected", metadata: ["source": "\(name)", "url": "\(redacted)", "connection": "\(connection)"])
                statistics.connected.store(true, ordering: .relaxed)
                statistics.connections.add(1, ordering: .relaxed)
                defer { statistics.connected.store(false, ordering: .relaxed) }
                while let item = try decoder.next() {
                    var shifted = item
                    switch item {
                    case .video(var f):
                        f.segment += connection * 1_000
                        shifted = .video(f)
                        stall.reset()
                        if !gotFrames {
                            gotFrames = true
                            recovered(lostAt: lostAt)
                        }
                        statistics.frames.add(1, ordering: .relaxed)
                        statistics.lastFrameBits.store(Date().timeIntervalSince1970.bitPattern, ordering: .relaxed)
                    case .audio(var c):
                        c.segment += connection * 1_000
                        shifted = .audio(c)
                    case .segmentBoundary:
                        continue
                    }
                    let dropped = queue.push(shifted)
                    if dropped > 0 {
                        statistics.droppedFrames.add(dropped, ordering: .relaxed)
                        runStatistics.droppedFrames.add(dropped, ordering: .relaxed)
                    }
                }
                logger.warning("live source ended", metadata: ["source": "\(name)", "url": "\(redacted)"])
                statistics.lastError.withLock { $0 = "the stream ended" }
            } catch {
                if isStopping {
                    stall.cancel()
                    break
                }
                refused = error.kind == .unauthorized
                if stall.fired {
                    let seconds = String(format: "%g", config.stallSeconds)
                    let reason = "stalled: no frame for \(seconds) s (sources.stall_seconds) while \(opened ? "reading" : "connecting")"
                    logger.warning("live source stalled", metadata: [
                        "source": "\(name)", "url": "\(redacted)", "stall_seconds": "\(seconds)", "phase": "\(opened ? "reading" : "connecting")",
                    ])
                    statistics.lastError.withLock { $0 = reason }
                } else {
                    var metadata: Logger.Metadata = ["source": "\(name)", "url": "\(redacted)", "error": "\(error)"]
                    if refused {
                        metadata["hint"] = "the server refused the credentials: check the user and password in the URL, srt_passphrase or http_headers; retrying every sources.backoff_max"
                    }
                    logger.warning("live source failed", metadata: metadata)
                    statistics.lastError.withLock { $0 = "\(error)" }
                }
            }
            stall.cancel()
            current.withLock { $0 = nil }
            if gotFrames {
                lostAt = Date()
                statistics.failedAttempts.store(0, ordering: .relaxed)
            } else {
                statistics.failedAttempts.add(1, ordering: .relaxed)
            }
            if isPipe {
                logger.warning("stdin is done: it cannot be reopened, so this source is finished", metadata: ["source": "\(name)"])
                break
            }
            connection += 1
            if gotFrames && Date().timeIntervalSince(connectedAt) >= config.backoffResetAfter { delay = config.backoffInitial }
            // Wrong credentials will not fix themselves: no fast retries that a server may read
            // as an attack and lock the account for.
            if refused { delay = config.backoffMax }
            // Exponential backoff with ±25 % jitter, interruptible by a stop.
            let jittered = delay * Double.random(in: 0.75...1.25)
            logger.info("reconnecting", metadata: [
                "source": "\(name)", "url": "\(redacted)", "in_seconds": "\(String(format: "%.1f", jittered))",
                "failed_attempts": "\(statistics.failedAttempts.load(ordering: .relaxed))",
            ])
            backoff.wait(until: Date().addingTimeInterval(jittered), for: { _ in self.isStopping }) { _ in }
            delay = min(config.backoffMax, delay * 2)
        }
        current.withLock { $0 = nil }
        queue.close()
    }

    /// The first frame of a connection: after a loss, how long the stream was gone.
    private func recovered(lostAt: Date?) {
        let attempts = statistics.failedAttempts.load(ordering: .relaxed)
        statistics.failedAttempts.store(0, ordering: .relaxed)
        guard let lostAt else { return }
        let seconds = max(Date().timeIntervalSince(lostAt), 1e-6)
        statistics.lastRecoveryBits.store(seconds.bitPattern, ordering: .relaxed)
        logger.info("live source recovered", metadata: [
            "source": "\(name)", "url": "\(redacted)", "recovery_seconds": "\(String(format: "%.2f", seconds))",
            "failed_attempts": "\(attempts)",
        ])
    }

    /// The pairing loop: drains the queue into the exchange (never waiting for room) until the
    /// reader has closed it.
    func pairingLoop() {
        var pairing = SourcePairing(source: source, config: config)
        while let item = queue.pop() {
            let examples = pairing.ingest(item)
            if !examples.isEmpty { exchange.deliver(examples, waitForRoom: false) }
        }
        exchange.setProducer(producerName, .finished)
    }
}

/// A one-shot timer that calls `fire` once `seconds` pass without a `reset()`: the live reader's
/// stall detection (a DispatchSource ticking each second). A dispatch source may be used from
/// any thread, but Dispatch does not mark it `Sendable`: hence `@unchecked`.
private final class StallTimer: @unchecked Sendable {
    private let timer: DispatchSourceTimer
    private let last = Shared(Date())
    private let didFire = Shared(false)

    init(seconds: Double, fire: @escaping @Sendable () -> Void) {
        timer = DispatchSource.makeTimerSource(queue: .global())
        // Ticks 4 times per stall period (at most once a second), so a stall is seen within
        // 1.25 × stall_seconds.
        let tick = min(1, seconds / 4)
        timer.schedule(deadline: .now() + tick, repeating: tick)
        let last = self.last, didFire = self.didFire
        timer.setEventHandler {
            if Date().timeIntervalSince(last.value) > seconds {
                didFire.value = true
                fire()
            }
        }
        timer.resume()
    }

    /// Whether the timer has fired (the stall, not something else, ended the connection).
    var fired: Bool { didFire.value }

    func reset() { last.value = Date() }
    func cancel() { timer.cancel() }
}

/// A live source as a service: reader and pairing on dedicated threads; returns when told to
/// stop, once both have ended.
struct LiveSourceService: Service {
    let live: LiveSource

    func run() async throws {
        let live = self.live
        await runBlockingService(name: "live", stop: { live.stop() }) {
            let done = DispatchSemaphore(value: 0)
            let reader = Thread {
                live.readLoop()
                done.signal()
            }
            reader.name = "live-reader"
            reader.start()
            // This thread does the pairing; the reader has its own.
            live.pairingLoop()
            done.wait()
        }
    }
}
