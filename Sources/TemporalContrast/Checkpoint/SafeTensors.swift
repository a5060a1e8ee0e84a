public import Foundation

/// The safetensors file format: an 8-byte little-endian header length N, N bytes of JSON
/// `{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}`
/// (offsets relative to the first byte after the header), then the raw little-endian tensor data.
/// Python's `safetensors` package reads what this writes. Three dtypes: F32 (parameters, state),
/// F64 (timestamps, which must survive exactly) and U8 (raw pixels, e.g. the replay buffer's images).
public struct SafeTensors: Sendable, Equatable {
    public enum DType: String, Sendable, Equatable {
        case f32 = "F32"
        case f64 = "F64"
        case u8 = "U8"

        var width: Int {
            switch self {
            case .f32: 4
            case .f64: 8
            case .u8: 1
            }
        }
    }

    /// One tensor: `values` holds F32 data, `doubles` F64 data, `bytes` U8 data (the others are empty).
    public struct Entry: Sendable, Equatable {
        public var dtype: DType
        public var shape: [Int]
        public var values: [Float] = []
        public var doubles: [Double] = []
        public var bytes: [UInt8] = []

        public init(shape: [Int], values: [Float]) {
            dtype = .f32
            self.shape = shape
            self.values = values
        }

        public init(shape: [Int], doubles: [Double]) {
            dtype = .f64
            self.shape = shape
            self.doubles = doubles
        }

        public init(shape: [Int], bytes: [UInt8]) {
            dtype = .u8
            self.shape = shape
            self.bytes = bytes
        }

        var byteCount: Int { values.count * 4 + doubles.count * 8 + bytes.count }
    }

    public enum FormatError: Error, CustomStringConvertible, Equatable {
        case truncated(String)
        case badHeader(String)
        case unsupported(String)

        public var description: String {
            switch self {
            case .truncated(let m): "safetensors: truncated: \(m)"
            case .badHeader(let m): "safetensors: bad header: \(m)"
            case .unsupported(let m): "safetensors: unsupported: \(m)"
            }
        }
    }

    /// Tensors in file order.
    public private(set) var names: [String] = []
    public private(set) var tensors: [String: Entry] = [:]
    /// String-to-string metadata (`__metadata__`).
    public var metadata: [String: String] = [:]

    public init() {}

    public subscript(name: String) -> Entry? { tensors[name] }

    /// Adds (or replaces) a float32 tensor.
    public mutating func set(_ name: String, shape: [Int], values: [Float]) {
        insert(name, Entry(shape: shape, values: values), count: values.count)
    }

    /// Adds (or replaces) a float64 tensor.
    public mutating func set(_ name: String, shape: [Int], doubles: [Double]) {
        insert(name, Entry(shape: shape, doubles: doubles), count: doubles.count)
    }

    /// Adds (or replaces) a uint8 tensor.
    public mutating func set(_ name: String, shape: [Int], bytes: [UInt8]) {
        insert(name, Entry(shape: shape, bytes: bytes), count: bytes.count)
    }

    private mutating func insert(_ name: String, _ entry: Entry, count: Int) {
        precondition(entry.shape.reduce(1, *) == count, "safetensors: \(name) shape \(entry.shape) vs \(count) values")
        if tensors[name] == nil { names.append(name) }
        tensors[name] = entry
    }

    /// Largest header this reader accepts: a checkpoint's header holds the replay buffer's
    /// bookkeeping (a few hundred bytes per entry), far below this.
    public static let maximumHeaderBytes = 256 << 20

    /// Parses a safetensors file's bytes (F32, F64 and U8 tensors). Every size in the header is
    /// checked with overflow-checked arithmetic against the file before anything is read, so a
    /// damaged or hostile file is an error, never a trap.
    public init(data: Data) throws(FormatError) {
        let (headerEnd, header) = try Self.parseHeader(data)
        if let meta = header["__metadata__"] {
            guard let m = meta as? [String: String] else { throw .badHeader("__metadata__ must map strings to strings") }
            metadata = m
        }
        var entries: [(String, Int, Entry)] = []
        let dataBytes = data.count - headerEnd
        for (name, value) in header where name != "__metadata__" {
            let (type, shape, begin, count) = try Self.layout(name, value, dataBytes: dataBytes)
            let start = data.startIndex + headerEnd + begin
            let entry: Entry
            switch type {
            case .u8:
                entry = Entry(shape: shape, bytes: [UInt8](data[start..<(start + count)]))
            case .f64:
                entry = Entry(shape: shape, doubles: data.withUnsafeBytes { raw in
                    (0..<count).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: headerEnd + begin + $0 * 8, as: UInt64.self))) }
                })
            case .f32:
                entry = Entry(shape: shape, values: data.withUnsafeBytes { raw in
                    (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: headerEnd + begin + $0 * 4, as: UInt32.self))) }
                })
            }
            entries.append((name, begin, entry))
        }
        for (name, _, entry) in entries.sorted(by: { ($0.1, $0.0) < ($1.1, $1.0) }) {
            names.append(name)
            tensors[name] = entry
        }
    }

    /// Only the metadata of a safetensors file, reading its header and nothing else.
    public static func metadata(of url: URL) throws -> [String: String] {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        let prefix = try handle.read(upToCount: 8) ?? Data()
        guard prefix.count == 8 else { throw FormatError.truncated("\(prefix.count) bytes, need at least 8") }
        let length = prefix.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(maximumHeaderBytes) else { throw FormatError.badHeader("header claims \(length) bytes, more than \(maximumHeaderBytes)") }
        let header = try handle.read(upToCount: Int(length)) ?? Data()
        let (_, parsed) = try parseHeader(prefix + header, requireData: false)
        guard let meta = parsed["__metadata__"] else { return [:] }
        guard let m = meta as? [String: String] else { throw FormatError.badHeader("__metadata__ must map strings to strings") }
        return m
    }

    /// The header's end offset and its JSON object.
    private static func parseHeader(_ data: Data, requireData: Bool = true) throws(FormatError) -> (Int, [String: Any]) {
        guard data.count >= 8 else { throw .truncated("\(data.count) bytes, need at least 8") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(maximumHeaderBytes) else { throw .badHeader("header claims \(headerLength) bytes, more than \(maximumHeaderBytes)") }
        guard headerLength <= UInt64(data.count - 8) else { throw .truncated("header claims \(headerLength) bytes, file has \(data.count - 8)") }
        let headerEnd = 8 + Int(headerLength)
        let start = data.startIndex
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: data[(start + 8)..<(start + headerEnd)]) } catch { throw .badHeader("not JSON") }
        guard let header = json as? [String: Any] else { throw .badHeader("not a JSON object") }
        return (headerEnd, header)
    }

    /// A tensor's dtype, shape, first byte and element count, checked against `dataBytes`.
    private static func layout(_ name: String, _ value: Any, dataBytes: Int) throws(FormatError) -> (DType, [Int], Int, Int) {
        guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
            let shapeValues = info["shape"] as? [Any], let offsetValues = info["data_offsets"] as? [Any], offsetValues.count == 2
        else { throw .badHeader("entry \(name) lacks dtype, shape or data_offsets") }
        guard let type = DType(rawValue: dtype) else { throw .unsupported("\(name) has dtype \(dtype); only F32, F64 and U8 are read") }
        // Integers only: fractions and numbers beyond Int's range do not cast.
        func integer(_ v: Any) -> Int? { v as? Int }
        let shape = shapeValues.compactMap(integer)
        let offsets = offsetValues.compactMap(integer)
        guard shape.count == shapeValues.count, shape.count <= 8, offsets.count == 2 else {
            throw .badHeader("\(name): shape and data_offsets must be at most 8 and exactly 2 integers")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw .badHeader("\(name): negative dimension in shape \(shape)") }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= dataBytes else { throw .truncated("\(name): shape \(shape) needs more than the \(dataBytes) data bytes in the file") }
            count = product
        }
        let (begin, end) = (offsets[0], offsets[1])
        let (bytes, overflow) = count.multipliedReportingOverflow(by: type.width)
        guard !overflow, begin >= 0, end >= begin, end <= dataBytes, end - begin == bytes else {
            throw .truncated("\(name): offsets \(begin)..<\(end) do not fit shape \(shape) (\(type.rawValue)) in \(dataBytes) data bytes")
        }
        return (type, shape, begin, count)
    }

    /// Reads a file through a memory map, so a large checkpoint costs no second copy.
    public init(contentsOf url: URL) throws {
        try self.init(data: Data(contentsOf: url, options: .alwaysMapped))
    }

    /// The file's bytes: tensors packed in insertion order, header padded with spaces to 8 bytes.
    public func serialized() -> Data {
        var out = Self.header(for: streams, metadata: metadata)
        let sink = ByteSink { chunk in
            out.append(contentsOf: chunk)
            return 0
        }
        for stream in streams { stream.emit(sink) }
        _ = sink.finish()
        return out
    }

    /// The tensors as streams, in insertion order (what `CheckpointStore` writes).
    public var streams: [TensorStream] {
        names.map { name in
            let e = tensors[name]!
            switch e.dtype {
            case .u8: return TensorStream(name: name, dtype: .u8, shape: e.shape) { $0.append(e.bytes) }
            case .f32: return TensorStream(name: name, dtype: .f32, shape: e.shape) { $0.append(e.values) }
            case .f64: return TensorStream(name: name, dtype: .f64, shape: e.shape) { $0.append(e.doubles) }
            }
        }
    }

    /// The 8-byte length and the JSON header for `tensors` packed in order, padded to 8 bytes.
    public static func header(for tensors: [TensorStream], metadata: [String: String]) -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.byteCount]]
            offset += t.byteCount
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        return out
    }
}

/// One tensor of a safetensors file whose bytes are produced while the file is written, so a large
/// checkpoint (the replay buffer's pixels) is never assembled in memory. `emit` must append exactly
/// `byteCount` bytes (the shape's element count times the dtype's width) to the sink.
public struct TensorStream: Sendable {
    public let name: String
    public let dtype: SafeTensors.DType
    public let shape: [Int]
    public let byteCount: Int
    public let emit: @Sendable (ByteSink) -> Void

    public init(name: String, dtype: SafeTensors.DType, shape: [Int], emit: @escaping @Sendable (ByteSink) -> Void) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        byteCount = shape.reduce(1, *) * dtype.width
        self.emit = emit
    }
}

/// Bytes on their way to a file, handed to `flush` in chunks of about 1 MiB. The first failure
/// `flush` reports (an errno) stops further output and is kept for `finish()`. Little-endian hosts
/// (x86-64, arm64) store Float and Double as safetensors wants, so values are copied as they are.
public final class ByteSink {
    private var buffer: [UInt8] = []
    private let chunk: Int
    private let flush: (UnsafeRawBufferPointer) -> Int32
    /// Bytes appended so far.
    public private(set) var count = 0
    public private(set) var failure: Int32 = 0

    /// `flush` receives each chunk (valid only during the call) and returns 0 or an errno.
    public init(chunk: Int = 1 << 20, flush: @escaping (UnsafeRawBufferPointer) -> Int32) {
        self.chunk = chunk
        self.flush = flush
        buffer.reserveCapacity(chunk)
    }

    public func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append(raw: $0) } }
    public func append(_ values: [Float]) { values.withUnsafeBytes { append(raw: $0) } }
    public func append(_ values: [Double]) { values.withUnsafeBytes { append(raw: $0) } }

    /// Copies `bytes` (which must not escape this call) into the chunk buffer.
    public func append(raw bytes: UnsafeRawBufferPointer) {
        count += bytes.count
        guard failure == 0 else { return }
        if buffer.count + bytes.count > chunk { drain() }
        if bytes.count >= chunk {
            if failure == 0 { failure = flush(bytes) }
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    /// Flushes what is buffered; returns 0 or the first errno.
    public func finish() -> Int32 {
        drain()
        return failure
    }

    private func drain() {
        guard !buffer.isEmpty else { return }
        if failure == 0 { failure = buffer.withUnsafeBytes { flush($0) } }
        buffer.removeAll(keepingCapacity: true)
    }
}
