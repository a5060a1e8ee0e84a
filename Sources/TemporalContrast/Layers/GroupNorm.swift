/// Group normalisation over channels-last tensors `[n, ..., channels]`: for each sample and each of
/// `groups` contiguous channel groups, subtract the mean and divide by √(variance + ε) over every
/// position and channel of the group, then scale and shift per channel (`gamma`, `beta`, `[channels]`).
///
/// Unlike BatchNorm it never mixes samples, so a batch of frames from one video cannot leak
/// information across the contrastive task. Per-sample work is split across `Parallel` workers;
/// parameter gradients are reduced over samples in a fixed order, so results do not depend on the
/// worker count.
///
/// With `relu: true` the layer computes max(0, GroupNorm(x)) in the same pass (the encoders'
/// GroupNorm → ReLU pair); backward recovers the ReLU mask from the cached statistics.
public final class GroupNorm: Layer {
    public let gamma: Parameter
    public let beta: Parameter
    public let groups: Int
    public let channels: Int
    public let epsilon: Float
    public let relu: Bool

    public init(groups: Int, channels: Int, epsilon: Float = 1e-5, relu: Bool = false, name: String) {
        self.relu = relu
        precondition(channels % groups == 0, "GroupNorm \(name): \(channels) channels do not split into \(groups) groups")
        self.groups = groups
        self.channels = channels
        self.epsilon = epsilon
        gamma = Parameter(name: "\(name).weight", shape: [channels], value: [Float](repeating: 1, count: channels), decays: false)
        beta = Parameter(name: "\(name).bias", shape: [channels], value: [Float](repeating: 0, count: channels), decays: false)
    }

    public var parameters: [Parameter] { [gamma, beta] }

    final class Cache: LayerCache {
        let input: Tensor
        /// Per sample and group: mean and 1/√(var + ε), `[n, groups]`.
        let mean: [Float], rstd: [Float]
        init(input: Tensor, mean: [Float], rstd: [Float]) {
            self.input = input
            self.mean = mean
            self.rstd = rstd
        }
    }

    public func infer(_ input: Tensor) -> Tensor { normalize(input).output }

    public func forward(_ input: Tensor) -> (Tensor, LayerCache) {
        let r = normalize(input)
        return (r.output, Cache(input: input, mean: r.mean, rstd: r.rstd))
    }

    private func normalize(_ input: Tensor) -> (output: Tensor, mean: [Float], rstd: [Float]) {
        let n = input.batch, c = channels, positions = input.itemSize / c
        precondition(input.shape.last == c, "GroupNorm \(gamma.name): last dimension must be \(c), got \(input.shape)")
        let perGroup = c / groups, groups = self.groups, relu = self.relu, epsilon = Double(self.epsilon)
        var mean = [Float](repeating: 0, count: n * groups), rstd = mean
        let count = Double(positions * perGroup)
        let output = Tensor(shape: input.shape) { out in
            input.storage.withUnsafeBufferPointer { xb in
                mean.withUnsafeMutableBufferPointer { mb in
                    rstd.withUnsafeMutableBufferPointer { rb in
                        gamma.value.withUnsafeBufferPointer { gb in
                            beta.value.withUnsafeBufferPointer { bb in
                                let x = xb.baseAddress!, y = out.baseAddress!, m = mb.baseAddress!, r = rb.baseAddress!
                                let gam = gb.baseAddress!, bet = bb.baseAddress!
                                Parallel.forEachRange(n) { samples in
                                    // Per-worker scratch: channel sums, squares, and the affine map.
                                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 4 * c)
                                    defer { scratch.deallocate() }
                                    let sum = scratch, sq = scratch + c, scale = scratch + 2 * c, shift = scratch + 3 * c
                                    for s in samples {
                                        let base = s * positions * c
                                        sum.update(repeating: 0, count: 2 * c)
                                        for p in 0..<positions {
                                            let row = x + base + p * c
                                            for j in 0..<c {
                                                let v = row[j]
                                                sum[j] += v
                                                sq[j] += v * v
                                            }
                                        }
                                        for g in 0..<groups {
                                            var s1: Double = 0, s2: Double = 0
                                            for j in (g * perGroup)..<((g + 1) * perGroup) {
                                                s1 += Double(sum[j])
                                                s2 += Double(sq[j])
                                            }
                                            let mu = s1 / count
                                            let inv = 1 / (max(0, s2 / count - mu * mu) + epsilon).squareRoot()
                                            m[s * groups + g] = Float(mu)
                                            r[s * groups + g] = Float(inv)
                                            for j in (g * perGroup)..<((g + 1) * perGroup) {
                                                scale[j] = Float(inv) * gam[j]
                                                shift[j] = bet[j] - Float(mu * inv) * gam[j]
                                            }
                                        }
                                        for p in 0..<positions {
                                            let row = x + base + p * c, dst = y + base + p * c
                                            if relu {
                                                for j in 0..<c { dst[j] = max(0, row[j] * scale[j] + shift[j]) }
                                            } else {
                                                for j in 0..<c { dst[j] = row[j] * scale[j] + shift[j] }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (output, mean, rstd)
    }

    public func backward(_ gradOutput: Tensor, cache: LayerCache, inputGradient: Bool) -> Tensor? {
        let cache = cache as! Cache
        let x = cache.input
        let n = x.batch, c = channels, positions = x.itemSize / c, perGroup = c / groups
        let groups = self.groups, relu = self.relu
        let count = Float(positions * perGroup)
        // Per sample and channel: Σ dy and Σ dy·x̂, kept per sample so the parameter gradients are
        // reduced over samples in a fixed order.
        var sumDy = [Float](repeating: 0, count: n * c), sumDyXhat = sumDy
        var dxStorage = [Float](unsafeUninitializedCapacity: inputGradient ? x.count : 0) { _, k in k = inputGradient ? x.count : 0 }
        dxStorage.withUnsafeMutableBufferPointer { dxb in
        x.storage.withUnsafeBufferPointer { xb in
        gradOutput.storage.withUnsafeBufferPointer { gb in
        sumDy.withUnsafeMutableBufferPointer { s1b in
        sumDyXhat.withUnsafeMutableBufferPointer { s2b in
        cache.mean.withUnsafeBufferPointer { meanb in
        cache.rstd.withUnsafeBufferPointer { rstdb in
        gamma.value.withUnsafeBufferPointer { gamb in
        beta.value.withUnsafeBufferPointer { betb in
            let xp = xb.baseAddress!, dy = gb.baseAddress!, s1 = s1b.baseAddress!, s2 = s2b.baseAddress!
            let meanp = meanb.baseAddress!, rstdp = rstdb.baseAddress!, gam = gamb.baseAddress!, bet = betb.baseAddress!
            let dxp: UnsafeMutablePointer<Float>? = inputGradient ? dxb.baseAddress : nil
            Parallel.forEachRange(n) { samples in
                // Per-worker scratch: Σ dy·x, the dx coefficients, the affine map, and the ReLU-masked dy.
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 6 * c + (relu ? positions * c : 0))
                defer { scratch.deallocate() }
                let dyx = scratch, coefDy = scratch + c, coefX = scratch + 2 * c, coefOne = scratch + 3 * c
                let scale = scratch + 4 * c, shift = scratch + 5 * c, masked = scratch + 6 * c
                for s in samples {
                    let base = s * positions * c
                    let sd = s1 + s * c
                    sd.update(repeating: 0, count: c)
                    dyx.update(repeating: 0, count: c)
                    var g = dy + base
                    if relu {
                        // With the fused ReLU, dy is zero where the normalised value was ≤ 0.
                        for gi in 0..<groups {
                            let mu = meanp[s * groups + gi], r = rstdp[s * groups + gi]
                            for j in (gi * perGroup)..<((gi + 1) * perGroup) {
                                scale[j] = r * gam[j]
                                shift[j] = bet[j] - mu * r * gam[j]
                            }
                        }
                        for p in 0..<positions {
                            GroupNorm.reluMask(x: xp + base + p * c, scale: scale, shift: shift, dy: dy + base + p * c, into: masked + p * c, count: c)
                        }
                        g = UnsafePointer(masked)
                    }
                    for p in 0..<positions {
                        let xr = xp + base + p * c, gr = g + p * c
                        for j in 0..<c {
                            sd[j] += gr[j]
                            dyx[j] += gr[j] * xr[j]
                        }
                    }
                    for gi in 0..<groups {
                        let mu = meanp[s * groups + gi], r = rstdp[s * groups + gi]
                        var a: Float = 0, b: Float = 0
                        for j in (gi * perGroup)..<((gi + 1) * perGroup) {
                            // Σ dy·x̂ = r·(Σ dy·x − μ·Σ dy)
                            let dyXhat = r * (dyx[j] - mu * sd[j])
                            s2[s * c + j] = dyXhat
                            a += gam[j] * sd[j]
                            b += gam[j] * dyXhat
                        }
                        // dx = r·γ·dy − r·A/N − x̂·r·B/N, written as coefDy·dy + coefX·x + coefOne.
                        for j in (gi * perGroup)..<((gi + 1) * perGroup) {
                            coefDy[j] = r * gam[j]
                            coefX[j] = -r * r * b / count
                            coefOne[j] = -r * a / count + r * r * mu * b / count
                        }
                    }
                    guard let dxp else { continue }
                    for p in 0..<positions {
                        let xr = xp + base + p * c, gr = g + p * c, out = dxp + base + p * c
                        for j in 0..<c { out[j] = coefDy[j] * gr[j] + coefX[j] * xr[j] + coefOne[j] }
                    }
                }
            }
        } } } } } } } } }
        for s in 0..<n {
            for j in 0..<c {
                gamma.gradient[j] += sumDyXhat[s * c + j]
                beta.gradient[j] += sumDy[s * c + j]
            }
        }
        return inputGradient ? Tensor(shape: x.shape, storage: dxStorage) : nil
    }

    /// out[j] = dy[j] where x[j]·scale[j] + shift[j] > 0, else 0: the fused ReLU's backward mask.
    /// Written with explicit vectors because the scalar select compiles to a branch per element.
    @inline(__always)
    static func reluMask(
        x: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<Float>, count: Int
    ) {
        var j = 0
        let rx = UnsafeRawPointer(x), rs = UnsafeRawPointer(scale), rh = UnsafeRawPointer(shift), rd = UnsafeRawPointer(dy)
        let ro = UnsafeMutableRawPointer(out)
        while j + 8 <= count {
            let o = j * 4
            let pre = rx.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * rs.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                + rh.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
            let g = rd.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
            ro.storeBytes(of: g.replacing(with: 0, where: pre .<= 0), toByteOffset: o, as: SIMD8<Float>.self)
            j += 8
        }
        while j < count {
            out[j] = x[j] * scale[j] + shift[j] > 0 ? dy[j] : 0
            j += 1
        }
    }
}
