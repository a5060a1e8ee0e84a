internal import CFFmpeg

/// Owns a SwsContext (sws_getCachedContext / sws_freeContext) that turns decoded frames into packed
/// RGB24. The context is rebuilt only when the input geometry or pixel format changes.
final class VideoScaler {
    private var context: OpaquePointer?
    private let options: VideoOptions
    private var key: (width: Int32, height: Int32, format: Int32) = (0, 0, -1)
    private(set) var outputWidth = 0
    private(set) var outputHeight = 0

    init(options: VideoOptions) { self.options = options }

    deinit { sws_freeContext(context) }

    private var flags: Int32 {
        switch options.scaling {
        case .fastBilinear: SWS_FAST_BILINEAR
        case .bilinear: SWS_BILINEAR
        case .bicubic: SWS_BICUBIC
        case .area: SWS_AREA
        }
    }

    /// Converts `frame` to RGB24 at the configured size. Returns nil for frames without a usable
    /// picture (zero size, unknown pixel format).
    func convert(_ frame: UnsafeMutablePointer<AVFrame>) -> (width: Int, height: Int, pixels: [UInt8])? {
        let f = frame.pointee
        guard f.width > 0, f.height > 0, f.format >= 0 else { return nil }
        if key != (f.width, f.height, f.format) || context == nil {
            guard prepare(frame) else { return nil }
        }
        let w = outputWidth, h = outputHeight
        let stride = Int32(w * 3)
        var scaledRows: Int32 = 0
        let pixels = [UInt8](unsafeUninitializedCapacity: w * h * 3) { buffer, count in
            var dst: [UnsafeMutablePointer<UInt8>?] = [buffer.baseAddress, nil, nil, nil]
            var dstStride: [Int32] = [stride, 0, 0, 0]
            // frame.data and frame.linesize are fixed-size C arrays (tuples); read them in place.
            withUnsafePointer(to: &frame.pointee.data) { dataTuple in
                withUnsafePointer(to: &frame.pointee.linesize) { linesizeTuple in
                    dataTuple.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { src in
                        linesizeTuple.withMemoryRebound(to: Int32.self, capacity: 8) { srcStride in
                            scaledRows = sws_scale(context, src, srcStride, 0, f.height, &dst, &dstStride)
                        }
                    }
                }
            }
            // Uninitialised bytes must never be delivered: keep nothing if swscale failed.
            count = scaledRows == Int32(h) ? w * h * 3 : 0
        }
        guard pixels.count == w * h * 3 else { return nil }
        return (w, h, pixels)
    }

    private func prepare(_ frame: UnsafeMutablePointer<AVFrame>) -> Bool {
        let f = frame.pointee
        var format = AVPixelFormat(rawValue: f.format)
        // The yuvj* formats are deprecated aliases for full-range YUV: use the plain format and say
        // "full range" explicitly, as swscale asks.
        var fullRange = f.color_range == AVCOL_RANGE_JPEG
        switch format {
        case AV_PIX_FMT_YUVJ420P: format = AV_PIX_FMT_YUV420P; fullRange = true
        case AV_PIX_FMT_YUVJ422P: format = AV_PIX_FMT_YUV422P; fullRange = true
        case AV_PIX_FMT_YUVJ444P: format = AV_PIX_FMT_YUV444P; fullRange = true
        case AV_PIX_FMT_YUVJ440P: format = AV_PIX_FMT_YUV440P; fullRange = true
        default: break
        }
        let size = options.outputSize(width: Int(f.width), height: Int(f.height))
        // On failure sws_getCachedContext has already freed the old context: forget it.
        guard let ctx = sws_getCachedContext(
            context, f.width, f.height, format, Int32(size.width), Int32(size.height), AV_PIX_FMT_RGB24,
            flags, nil, nil, nil)
        else {
            context = nil
            key = (0, 0, -1)
            return false
        }
        context = ctx
        // Use the frame's own YUV matrix (BT.709 for HD, BT.601 otherwise when unspecified).
        var space = Int32(f.colorspace.rawValue)
        if f.colorspace == AVCOL_SPC_UNSPECIFIED { space = f.height >= 720 ? SWS_CS_ITU709 : SWS_CS_DEFAULT }
        _ = sws_setColorspaceDetails(
            ctx, sws_getCoefficients(space), fullRange ? 1 : 0, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16)
        key = (f.width, f.height, f.format)
        outputWidth = size.width
        outputHeight = size.height
        return true
    }
}
