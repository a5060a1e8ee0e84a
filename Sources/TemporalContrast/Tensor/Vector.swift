internal import CBLAS

/// Element-wise kernels over Float buffers: BLAS level 1 where it exists, SIMD loops otherwise.
/// Every function states its contract; none allocates.
enum Vector {
    /// y += a · x (cblas_saxpy).
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        cblas_saxpy(Int32(count), a, x, 1, y, 1)
    }

    /// x *= a (cblas_sscal).
    static func scale(_ x: UnsafeMutablePointer<Float>, by a: Float, count: Int) {
        cblas_sscal(Int32(count), a, x, 1)
    }

    /// Σ x·y (cblas_sdot).
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        cblas_sdot(Int32(count), x, 1, y, 1)
    }

    /// Σ x² accumulated in Double, for norms that must not lose precision.
    static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var s: Double = 0
        for i in 0..<count { s += Double(x[i]) * Double(x[i]) }
        return s
    }

    /// y = a·y + b·x, 8 lanes at a time (the momentum-encoder update).
    static func blend(_ y: UnsafeMutablePointer<Float>, _ a: Float, _ x: UnsafePointer<Float>, _ b: Float, count: Int) {
        var i = 0
        let raw = UnsafeMutableRawPointer(y), rawX = UnsafeRawPointer(x)
        while i + 8 <= count {
            let vy = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let vx = rawX.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            raw.storeBytes(of: a * vy + b * vx, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            y[i] = a * y[i] + b * x[i]
            i += 1
        }
    }

    /// True when every value is finite.
    static func allFinite(_ x: UnsafePointer<Float>, count: Int) -> Bool {
        var bad = false
        for i in 0..<count where !x[i].isFinite { bad = true }
        return !bad
    }
}

extension Array where Element == Float {
    /// Sets every element to zero in place, keeping the allocation.
    mutating func zeroFill() {
        withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }
}
