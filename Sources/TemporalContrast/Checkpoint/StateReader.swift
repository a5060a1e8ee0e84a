/// Checked reads of a learner checkpoint: every tensor's presence, dtype, shape, length and
/// finiteness, every counter's range, each failure a `Learner.RestoreError` that names the entry.
public struct StateReader {
    public let file: SafeTensors

    public init(_ file: SafeTensors) { self.file = file }

    public func fail(_ message: String) -> Learner.RestoreError {
        Learner.RestoreError(description: "checkpoint does not match this model: \(message)")
    }

    /// `count` finite F32 values (of `shape`, when given).
    public func floats(_ name: String, count: Int, shape: [Int]? = nil) throws(Learner.RestoreError) -> [Float] {
        guard let e = file[name] else { throw fail("missing \(name)") }
        guard e.dtype == .f32 else { throw fail("\(name) is \(e.dtype.rawValue), expected F32") }
        if let shape, e.shape != shape { throw fail("\(name) has shape \(e.shape), expected \(shape)") }
        guard e.values.count == count else { throw fail("\(name) has \(e.values.count) values, expected \(count)") }
        guard e.values.allSatisfy(\.isFinite) else { throw fail("\(name) holds NaN or infinite values") }
        return e.values
    }

    /// `count` finite F64 values.
    public func doubles(_ name: String, count: Int) throws(Learner.RestoreError) -> [Double] {
        guard let e = file[name], e.dtype == .f64, e.doubles.count == count, e.doubles.allSatisfy(\.isFinite) else {
            throw fail("\(name) must be \(count) finite F64 values")
        }
        return e.doubles
    }

    /// An integer counter from the metadata, in `range` (or `value` when absent, if given).
    public func counter(_ key: String, default value: Int? = nil, in range: ClosedRange<Int>) throws(Learner.RestoreError) -> Int {
        guard let text = file.metadata[key] else {
            if let value { return value }
            throw fail("metadata has no \(key)")
        }
        guard let n = Int(text), range.contains(n) else {
            throw fail("metadata \(key) = \(text.prefix(40)) is not an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    /// The values of `parameters` saved under `prefix` + each name.
    public func parameters(_ parameters: [Parameter], prefix: String = "") throws(Learner.RestoreError) -> [(Parameter, [Float])] {
        var values: [(Parameter, [Float])] = []
        for p in parameters { values.append((p, try floats("\(prefix)\(p.name)", count: p.count, shape: p.shape))) }
        return values
    }

    /// A random source saved by `SafeTensors.set(_:rng:)`.
    public func rng(_ name: String) throws(Learner.RestoreError) -> RandomSource {
        let words = file.metadata[name]?.split(separator: ",").compactMap { UInt64($0) } ?? []
        guard let rng = RandomSource(state: words) else { throw fail("metadata \(name) is not a random source state") }
        return rng
    }
}

extension SafeTensors {
    /// Saves `rng`'s state in the metadata under `name` (read back by `StateReader.rng`).
    public mutating func set(_ name: String, rng: RandomSource) {
        metadata[name] = rng.state.map { String($0) }.joined(separator: ",")
    }
}
