/// Table-driven CRC-32 in its two common polynomials (reflected, init and final xor all ones):
/// IEEE 802.3 for PNG chunks, Castagnoli (CRC-32C) for TensorBoard's record framing.
struct CRC32: Sendable {
    private let table: [UInt32]

    private init(polynomial: UInt32) {
        table = (0..<256).map { n in
            var c = UInt32(n)
            for _ in 0..<8 { c = c & 1 != 0 ? polynomial ^ (c >> 1) : c >> 1 }
            return c
        }
    }

    static let ieee = CRC32(polynomial: 0xEDB8_8320)
    static let castagnoli = CRC32(polynomial: 0x82F6_3B78)

    func checksum<C: Collection<UInt8>>(_ bytes: C) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// TensorBoard's (and TFRecord's) masked CRC-32C: rotated and offset, so a CRC stored inside
    /// checksummed data does not checksum to a fixed pattern.
    func masked<C: Collection<UInt8>>(_ bytes: C) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}

/// Appends `value` little-endian.
func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
}
