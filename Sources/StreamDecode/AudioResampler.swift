internal import CFFmpeg

/// Owns a SwrContext (swr_alloc_set_opts2 + swr_init / swr_free) that downmixes decoded audio to
/// mono Float32 at the output rate. Rebuilt when the input rate, layout or sample format changes.
final class AudioResampler {
    let outputRate: Int
    private var context: OpaquePointer?
    private var inputLayout = AVChannelLayout()
    private var inputRate: Int32 = 0
    private var inputFormat: Int32 = -1
    private let input: String

    init(outputRate: Int, input: String) {
        self.outputRate = outputRate
        self.input = input
    }

    deinit {
        swr_free(&context)
        av_channel_layout_uninit(&inputLayout)
    }

    /// Output samples still held inside the resampler's filter (they come out on `flush`).
    var bufferedOutputSamples: Int {
        guard let context else { return 0 }
        return Int(swr_get_delay(context, Int64(outputRate)))
    }

    /// Converts one decoded frame and appends the mono samples to `output`. If the input format
    /// changed, the old context's tail is flushed into `output` first.
    func convert(_ frame: UnsafeMutablePointer<AVFrame>, appendingTo output: inout [Float]) throws(DecodeError) {
        let f = frame.pointee
        guard f.nb_samples > 0, f.sample_rate > 0 else { return }
        var layout = AVChannelLayout()
        defer { av_channel_layout_uninit(&layout) }
        if f.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || f.ch_layout.nb_channels == 0 {
            av_channel_layout_default(&layout, max(1, frame.pointee.ch_layout.nb_channels))
        } else {
            _ = av_channel_layout_copy(&layout, &frame.pointee.ch_layout)
        }
        if context == nil || f.sample_rate != inputRate || f.format != inputFormat
            || av_channel_layout_compare(&layout, &inputLayout) != 0
        {
            if context != nil { flush(appendingTo: &output) }
            try rebuild(layout: &layout, rate: f.sample_rate, format: f.format)
        }
        let capacity = Int(swr_get_out_samples(context, f.nb_samples))
        guard capacity > 0 else { return }
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: capacity))
        let produced: Int32 = output.withUnsafeMutableBufferPointer { buffer in
            var out: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(buffer.baseAddress! + start)
                .assumingMemoryBound(to: UInt8.self)
            return withUnsafeMutablePointer(to: &out) { outPlanes in
                frame.pointee.extended_data.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 1) { inPlanes in
                    swr_convert(context, outPlanes, Int32(capacity), inPlanes, f.nb_samples)
                }
            }
        }
        if produced < 0 {
            output.removeLast(capacity)
            throw decodeError(produced, call: "swr_convert", input: input)
        }
        output.removeLast(capacity - Int(produced))
    }

    /// Drains the samples buffered in the resampler into `output` (end of input or a gap).
    func flush(appendingTo output: inout [Float]) {
        guard let context else { return }
        let capacity = bufferedOutputSamples + 32
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: capacity))
        let produced: Int32 = output.withUnsafeMutableBufferPointer { buffer in
            var out: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(buffer.baseAddress! + start)
                .assumingMemoryBound(to: UInt8.self)
            return swr_convert(context, &out, Int32(capacity), nil, 0)
        }
        output.removeLast(capacity - Int(max(0, produced)))
        // A drained SwrContext keeps its "flushed" state and padding; swr_init resets it so the
        // next input after a gap starts clean.
        _ = swr_init(context)
    }

    private func rebuild(layout: inout AVChannelLayout, rate: Int32, format: Int32) throws(DecodeError) {
        swr_free(&context)
        var mono = AVChannelLayout()
        av_channel_layout_default(&mono, 1)
        defer { av_channel_layout_uninit(&mono) }
        var ctx: OpaquePointer?
        try check(
            swr_alloc_set_opts2(
                &ctx, &mono, AV_SAMPLE_FMT_FLT, Int32(outputRate), &layout, AVSampleFormat(rawValue: format), rate, 0, nil),
            "swr_alloc_set_opts2", input: input)
        if layout.order == AV_CHANNEL_ORDER_UNSPEC && layout.nb_channels > 1 {
            // FFmpeg cannot derive a downmix for channels it cannot name: average them equally.
            let n = Int(layout.nb_channels)
            let matrix = [Double](repeating: 1 / Double(n), count: n)
            _ = swr_set_matrix(ctx, matrix, Int32(n))
        }
        let status = swr_init(ctx)
        if status < 0 {
            swr_free(&ctx)
            throw decodeError(status, call: "swr_init", input: input)
        }
        context = ctx
        av_channel_layout_uninit(&inputLayout)
        _ = av_channel_layout_copy(&inputLayout, &layout)
        inputRate = rate
        inputFormat = format
    }
}
