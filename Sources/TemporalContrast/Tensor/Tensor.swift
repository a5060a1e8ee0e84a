/// A dense Float32 tensor: a shape and contiguous row-major storage.
///
/// Images are NHWC (`[batch, height, width, channels]`), so a channel vector is contiguous and a
/// 3×3 convolution is one matrix product over im2col rows. Embeddings are `[batch, features]`.
/// A value type with copy-on-write storage (Swift arrays).
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var storage: [Float]

    public init(shape: [Int], storage: [Float]) {
        precondition(shape.reduce(1, *) == storage.count, "Tensor: shape \(shape) needs \(shape.reduce(1, *)) values, got \(storage.count)")
        self.shape = shape
        self.storage = storage
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, storage: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    /// A tensor whose storage is written entirely by `body` (no zero fill first).
    public init(shape: [Int], uninitialized body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let count = shape.reduce(1, *)
        self.shape = shape
        storage = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            body(buffer)
            initialized = count
        }
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    /// Size of the first dimension (the batch).
    public var batch: Int { shape[0] }
    /// Values per batch item.
    public var itemSize: Int { shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1 }

    public func reshaped(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, storage: storage) }

    /// Rows `range` of the first dimension.
    public func rows(_ range: Range<Int>) -> Tensor {
        let n = itemSize
        return Tensor(shape: [range.count] + shape.dropFirst(), storage: Array(storage[(range.lowerBound * n)..<(range.upperBound * n)]))
    }

    /// Stacks tensors of equal item shape along the first dimension.
    public static func concatenate(_ parts: [Tensor]) -> Tensor {
        guard let first = parts.first else { return Tensor(zeros: [0]) }
        var storage: [Float] = []
        storage.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for p in parts {
            precondition(Array(p.shape.dropFirst()) == Array(first.shape.dropFirst()), "concatenate: item shapes differ")
            storage += p.storage
        }
        return Tensor(shape: [parts.reduce(0) { $0 + $1.batch }] + first.shape.dropFirst(), storage: storage)
    }
}
