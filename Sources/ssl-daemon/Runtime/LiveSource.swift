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
    /// Why the last connection ended (credentials redacted), if one did.
    let lastError = Mutex<String?>(nil)

    var lastFrame: Double { Double(bitPattern: lastFrameBits.load(ordering: .relaxed)) }
}

/// One live stream (a URL or stdin): a reader thread that connects, reads and reconnects with
/// exponential backoff and jitter, a stall timer that forces a reconnect when no frame arrives
/// for `sources.stall_seconds`, and its own pairing thread behind a drop-oldest queue, so the
/// reader never waits for pairing or the trainer. Each connection is its own stretch of
/// timeline: nothing pairs across a reconnect.
final class LiveSource: Sendable {
    let location: String
    let statistics = LiveSourceStatistics()
    private let source: Int
    private let config: DaemonConfig
    private let exchange: ExampleExchange
    private let runStatistics: RunStatistics
    private let logger: Logger
    private let queue: DropOldestQueue<MediaItem>
    private let stopRequested = Atomic<Bool>(false)
    /// The interrupt of the connection being made or read, if any.
    private let current = Mutex<DecodeInterrupt?>(nil)
    /// Wakes the backoff sleep at shutdown.
    private let backoff = Monitor(())

    init(location: String, index: Int, config: DaemonConfig, exchange: ExampleExchange, statistics: RunStatistics, logger: Logger) {
        self.location = location
        source = SourceID.of(location)
        self.config = config
        self.exchange = exchange
        runStatistics = statistics
        self.logger = logger
        queue = DropOldestQueue(capacity: config.liveQueueFrames) { item in
            if case .video = item { return true } else { return false }
        }
        exchange.setProducer(Self.producerName(index), .active)
        producerName = Self.producerName(index)
    }

    private let producerName: String
    /// The source's name in metrics and on the status page.
    var name: String { producerName }
    private static func producerName(_ index: Int) -> String { "live-\(index)" }
    private var redacted: String { MediaSource.redacted(location) }
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
        while !isStopping {
            let interrupt = DecodeInterrupt()
            current.withLock { $0 = interrupt }
            // A stop between the check above and publishing the interrupt must still interrupt.
            if isStopping { break }
            let connectedAt = Date()
            var gotFrames = false
            do {
                let decoder = try MediaDecoder(location, options: config.decodeOptions(live: true), interrupt: interrupt)
                logger.info("live source connected", metadata: ["url": "\(redacted)", "connection": "\(connection)"])
                statistics.connected.store(true, ordering: .relaxed)
                statistics.connections.add(1, ordering: .relaxed)
                defer { statistics.connected.store(false, ordering: .relaxed) }
                let stall = StallTimer(seconds: config.stallSeconds) { interrupt.interrupt() }
                defer { stall.cancel() }
                while let item = try decoder.next() {
                    var shifted = item
                    switch item {
                    case .video(var f):
                        f.segment += connection * 1_000
                        shifted = .video(f)
                        stall.reset()
                        gotFrames = true
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
                logger.warning("live source ended", metadata: ["url": "\(redacted)"])
                statistics.lastError.withLock { $0 = "the stream ended" }
            } catch {
                if isStopping { break }
                logger.warning("live source failed", metadata: ["url": "\(redacted)", "error": "\(error)"])
                statistics.lastError.withLock { $0 = "\(error)" }
            }
            current.withLock { $0 = nil }
            connection += 1
            if gotFrames && Date().timeIntervalSince(connectedAt) >= config.backoffResetAfter { delay = config.backoffInitial }
            // Exponential backoff with ±25 % jitter, interruptible by a stop.
            let jittered = delay * Double.random(in: 0.75...1.25)
            logger.info("reconnecting", metadata: ["url": "\(redacted)", "in_seconds": "\(String(format: "%.1f", jittered))"])
            backoff.wait(until: Date().addingTimeInterval(jittered), for: { _ in self.isStopping }) { _ in }
            delay = min(config.backoffMax, delay * 2)
        }
        current.withLock { $0 = nil }
        queue.close()
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

    init(seconds: Double, fire: @escaping @Sendable () -> Void) {
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + 1, repeating: 1)
        let last = self.last
        timer.setEventHandler {
            if Date().timeIntervalSince(last.value) > seconds { fire() }
        }
        timer.resume()
    }

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
