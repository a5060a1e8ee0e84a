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

    /// Parses a safetensors file's bytes (F32, F64 and U8 tensors).
    public init(data: Data) throws(FormatError) {
        guard data.count >= 8 else { throw .truncated("\(data.count) bytes, need at least 8") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else { throw .truncated("header claims \(headerLength) bytes, file has \(data.count - 8)") }
        let headerEnd = 8 + Int(headerLength)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: data[8..<headerEnd]) } catch { throw .badHeader("not JSON") }
        guard let header = json as? [String: Any] else { throw .badHeader("not a JSON object") }
        if let meta = header["__metadata__"] {
            guard let m = meta as? [String: String] else { throw .badHeader("__metadata__ must map strings to strings") }
            metadata = m
        }
        var entries: [(String, Int, Entry)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw .badHeader("entry \(name) lacks dtype, shape or data_offsets") }
            guard let type = DType(rawValue: dtype) else { throw .unsupported("\(name) has dtype \(dtype); only F32, F64 and U8 are read") }
            let (begin, end) = (offsets[0], offsets[1])
            let count = shape.reduce(1, *)
            guard shape.allSatisfy({ $0 >= 0 }), begin >= 0, end - begin == count * type.width, headerEnd + end <= data.count else {
                throw .truncated("\(name): offsets \(begin)..<\(end) do not fit shape \(shape) in \(data.count - headerEnd) data bytes")
            }
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
        for (name, _, entry) in entries.sorted(by: { $0.1 < $1.1 }) {
            names.append(name)
            tensors[name] = entry
        }
    }

    public init(contentsOf url: URL) throws {
        try self.init(data: Data(contentsOf: url))
    }

    /// The file's bytes: tensors packed in insertion order, header padded with spaces to 8 bytes.
    public func serialized() -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for name in names {
            let e = tensors[name]!
            header[name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.byteCount]]
            offset += e.byteCount
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            let e = tensors[name]!
            // Little-endian hosts (x86-64, arm64) store Float and Double as the format wants.
            switch e.dtype {
            case .u8: out.append(contentsOf: e.bytes)
            case .f32: e.values.withUnsafeBytes { out.append(contentsOf: $0) }
            case .f64: e.doubles.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        return out
    }
}
