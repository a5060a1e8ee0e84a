public import Foundation

/// NumPy's `.npy` format, version 1.0, for float32 arrays: the magic `\x93NUMPY`, version 1 0, a
/// little-endian UInt16 header length, an ASCII dict header padded with spaces to a 64-byte
/// boundary and ending in a newline, then the C-order little-endian data. `numpy.load` reads it.
public enum NumpyFile {
    public static func float32(shape: [Int], values: [Float]) -> Data {
        precondition(shape.reduce(1, *) == values.count, "NumpyFile: shape \(shape) vs \(values.count) values")
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        out.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        out.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }
}
