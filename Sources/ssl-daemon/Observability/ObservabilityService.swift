import DaemonRuntime
import Foundation
import Logging
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// The HTTP endpoint as a service: `/metrics`, `/api/status`, `/healthz` and the status page.
/// When the address cannot be bound (another process holds the port), it says so in the log and
/// tries again every 30 s: training goes on either way.
struct ObservabilityService: Service {
    let listen: ListenAddress
    let maxConnections: Int
    let stuckSeconds: Double
    let metrics: DaemonMetrics
    /// The daemon's state now; with `detail`, the history and the retrieval panel too.
    let status: @Sendable (_ detail: Bool) -> RunStatus
    /// Where the endpoint listens once bound.
    let boundAddress: Shared<String?>
    let logger: Logger

    func run() async throws {
        await exitingOnCancel {
            var lastFailure: String?
            while !Task.isShuttingDownGracefully {
                do {
                    let endpoint = try await HTTPEndpoint.start(listen: listen, maxConnections: maxConnections, logger: logger, route: route)
                    boundAddress.value = endpoint.address
                    try? await gracefulShutdown()
                    await endpoint.close()
                    boundAddress.value = nil
                    return
                } catch {
                    if lastFailure != "\(error)" {
                        logger.error("http endpoint not started; retrying every 30 s (training goes on)", metadata: ["error": "\(error)"])
                        lastFailure = "\(error)"
                    }
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(30)) }
                }
            }
        }
    }

    private var route: @Sendable (HTTPMethod, String, String) -> HTTPReply {
        let metrics = self.metrics, status = self.status, stuck = self.stuckSeconds
        return { _, path, _ in
            switch path {
            case "/":
                return HTTPReply(status: .ok, contentType: "text/html; charset=utf-8", body: Array(StatusPage.render(status(true)).utf8),
                                 extraHeaders: [("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")])
            case "/metrics":
                return HTTPReply(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.scrape(status(false)))
            case "/api/status":
                return HTTPReply(status: .ok, contentType: "application/json", body: Array(Self.json(status(true))))
            case "/healthz":
                let s = status(false)
                let healthy = s.heartbeat_age_seconds < stuck
                let body = #"{"status":"\#(healthy ? "ok" : "stuck")","state":"\#(s.state)","step":\#(s.step),"heartbeat_age_seconds":\#(String(format: "%.3f", s.heartbeat_age_seconds))}"# + "\n"
                return HTTPReply(status: healthy ? .ok : .serviceUnavailable, contentType: "application/json", body: Array(body.utf8))
            default:
                return .text(.notFound, "not found; try /, /metrics, /api/status or /healthz\n")
            }
        }
    }

    static func json(_ status: RunStatus) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(status)) ?? Data(#"{"error":"status could not be encoded"}"#.utf8)
    }
}

/// Rates (per second) of running totals, each over at least `window` seconds, so two reads a
/// moment apart do not give noise.
final class RateMeter: Sendable {
    private struct Sample { var time: Double; var count: Int; var rate: Double? }
    private let samples = Mutex<[String: Sample]>([:])
    let window: Double

    init(window: Double = 2) { self.window = window }

    func rate(_ key: String, total: Int, now: Double = Date().timeIntervalSince1970) -> Double? {
        samples.withLock { s in
            guard var sample = s[key] else {
                s[key] = Sample(time: now, count: total, rate: nil)
                return nil
            }
            if now - sample.time >= window {
                sample.rate = Double(total - sample.count) / (now - sample.time)
                sample.time = now
                sample.count = total
                s[key] = sample
            }
            return sample.rate
        }
    }
}
