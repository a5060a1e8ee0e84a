import Foundation
import Glibc
import Logging
import ServiceLifecycle

/// What the trainer measured at one step, as the status page's plots and TensorBoard show it.
/// Values that were not measured (or are not finite) are absent.
struct ScalarRecord: Sendable, Codable, Equatable {
    var step: Int
    /// Seconds since 1970.
    var time: Double
    var values: [String: Float]
}

/// TensorBoard's event file format, written by hand: a record is the payload's length (u64 LE),
/// the masked CRC-32C of those 8 bytes, the payload, and its masked CRC-32C; the payload is a
/// serialised `tensorflow.Event` protobuf. Only the fields scalars need are encoded:
///
/// ```
/// Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
/// Summary { repeated Value value = 1; }
/// Value   { string tag = 1; float simple_value = 2; }
/// ```
enum TensorBoardEvent {
    static func fileVersion(time: Double) -> [UInt8] {
        var event: [UInt8] = []
        field(1, fixed64: time.bitPattern, into: &event)
        field(3, bytes: Array("brain.Event:2".utf8), into: &event)
        return framed(event)
    }

    /// One event holding every value of `record`, tags in sorted order.
    static func scalars(_ record: ScalarRecord) -> [UInt8] {
        var summary: [UInt8] = []
        for (tag, value) in record.values.sorted(by: { $0.key < $1.key }) {
            var v: [UInt8] = []
            field(1, bytes: Array(tag.utf8), into: &v)
            key(2, wireType: 5, into: &v)
            appendLittleEndian(value.bitPattern, to: &v)
            field(1, bytes: v, into: &summary)
        }
        var event: [UInt8] = []
        field(1, fixed64: record.time.bitPattern, into: &event)
        key(2, wireType: 0, into: &event)
        varint(UInt64(bitPattern: Int64(record.step)), into: &event)
        field(5, bytes: summary, into: &event)
        return framed(event)
    }

    static func framed(_ payload: [UInt8]) -> [UInt8] {
        var header: [UInt8] = []
        appendLittleEndian(UInt64(payload.count), to: &header)
        var out = header
        appendLittleEndian(CRC32.castagnoli.masked(header), to: &out)
        out += payload
        appendLittleEndian(CRC32.castagnoli.masked(payload), to: &out)
        return out
    }

    private static func key(_ number: Int, wireType: UInt64, into out: inout [UInt8]) {
        varint(UInt64(number) << 3 | wireType, into: &out)
    }

    private static func field(_ number: Int, bytes: [UInt8], into out: inout [UInt8]) {
        key(number, wireType: 2, into: &out)
        varint(UInt64(bytes.count), into: &out)
        out += bytes
    }

    private static func field(_ number: Int, fixed64: UInt64, into out: inout [UInt8]) {
        key(number, wireType: 1, into: &out)
        appendLittleEndian(fixed64, to: &out)
    }

    private static func varint(_ value: UInt64, into out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}

/// Appends scalar records to a TensorBoard event file in `STATE_DIR/tensorboard/` from its own
/// thread, behind a bounded queue: the trainer never waits for the disk (when the disk is slower
/// than the records, the oldest are dropped and counted). A new file per run, as TensorBoard
/// expects; each record goes out in one write(2), so a crash leaves at most one torn record at
/// the end, which TensorBoard's reader skips.
final class TensorBoardWriter: Sendable {
    let path: String
    private let fd: Int32
    private let queue = DropOldestQueue<ScalarRecord>(capacity: 1024)
    private let logger: Logger

    init(directory: URL, logger: Logger) throws(DaemonError) {
        self.logger = logger
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw .outputDirectory(directory.path, "cannot create the TensorBoard directory: \(error.localizedDescription)")
        }
        let now = Date().timeIntervalSince1970
        let hostname = ProcessInfo.processInfo.hostName.isEmpty ? "localhost" : ProcessInfo.processInfo.hostName
        path = directory.appendingPathComponent("events.out.tfevents.\(Int(now)).\(hostname).\(getpid())").path
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .posix("open", path: path) }
        writeAll(TensorBoardEvent.fileVersion(time: now))
    }

    deinit { close(fd) }

    /// Queues `record`; never waits.
    func record(_ record: ScalarRecord) { queue.push(record) }

    /// Records dropped because the writer fell behind.
    var dropped: Int { queue.dropped }

    /// Writes queued records until `finish()`, then the rest.
    func loop() {
        while let record = queue.pop() { writeAll(TensorBoardEvent.scalars(record)) }
    }

    func finish() { queue.close() }

    private func writeAll(_ bytes: [UInt8]) {
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        if !ok { logger.warning("TensorBoard event not written", metadata: ["file": "\(path)", "error": "\(String(cString: strerror(errno)))"]) }
    }
}

/// The TensorBoard writer's thread as a service; it stops after the trainer, so the last records
/// are written.
struct TensorBoardService: Service {
    let writer: TensorBoardWriter

    func run() async throws {
        let writer = self.writer
        await runBlockingService(name: "tensorboard", stop: { writer.finish() }) { writer.loop() }
    }
}
