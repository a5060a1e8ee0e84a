import Foundation

/// Line plots as inline SVG, drawn by the daemon (the page needs no script and no network).
enum SVGPlot {
    static let width = 420.0, height = 170.0
    private static let left = 52.0, right = 10.0, top = 24.0, bottom = 26.0

    /// - Parameters:
    ///   - series: (step, value) points, oldest first; at most 400 are drawn (evenly picked).
    ///   - reference: a second, dashed line (a chance loss), or nil.
    ///   - level: a constant dashed line (the healthy std ratio 1), or nil.
    static func render(title: String, series: [(x: Double, y: Double)], reference: [(x: Double, y: Double)]? = nil,
                       level: Double? = nil, referenceLabel: String? = nil, yFloor: Double? = nil) -> String {
        let points = thin(series), ref = reference.map(thin) ?? []
        var svg = "<svg class=\"plot\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"\(escapeHTML(title))\">"
        svg += "<text x=\"\(left)\" y=\"15\" class=\"title\">\(escapeHTML(title))</text>"
        guard points.count >= 2 else {
            return svg + "<text x=\"\(width / 2)\" y=\"\(height / 2)\" text-anchor=\"middle\" class=\"muted\">no data yet</text></svg>"
        }
        let xs = points.map(\.x) + ref.map(\.x)
        var ys = points.map(\.y) + ref.map(\.y) + (level.map { [$0] } ?? [])
        if let yFloor { ys.append(yFloor) }
        let x0 = xs.min()!, x1 = max(xs.max()!, x0 + 1)
        var y0 = ys.min()!, y1 = ys.max()!
        if y1 - y0 < 1e-9 { y0 -= 0.5; y1 += 0.5 }
        let pad = (y1 - y0) * 0.05
        y0 -= pad; y1 += pad
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (width - left - right) }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom) }
        func path(_ pts: [(x: Double, y: Double)]) -> String {
            pts.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(f1(px($0.element.x))),\(f1(py($0.element.y)))" }.joined()
        }
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width - left - right)\" height=\"\(height - top - bottom)\" class=\"frame\"/>"
        for (value, anchorY) in [(y1 - pad, py(y1 - pad)), (y0 + pad, py(y0 + pad))] {
            svg += "<text x=\"\(left - 4)\" y=\"\(f1(anchorY + 4))\" text-anchor=\"end\" class=\"axis\">\(number(value))</text>"
        }
        svg += "<text x=\"\(left)\" y=\"\(height - 8)\" class=\"axis\">step \(Int(x0))</text>"
        svg += "<text x=\"\(width - right)\" y=\"\(height - 8)\" text-anchor=\"end\" class=\"axis\">\(Int(x1))</text>"
        if let level {
            svg += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(f1(py(level)))\" y2=\"\(f1(py(level)))\" class=\"reference\"/>"
        }
        if ref.count >= 2 { svg += "<path d=\"\(path(ref))\" class=\"reference\"/>" }
        if let referenceLabel {
            svg += "<text x=\"\(width - right)\" y=\"15\" text-anchor=\"end\" class=\"muted\">- - \(escapeHTML(referenceLabel))</text>"
        }
        svg += "<path d=\"\(path(points))\" class=\"line\"/></svg>"
        return svg
    }

    private static func thin(_ points: [(x: Double, y: Double)]) -> [(x: Double, y: Double)] {
        guard points.count > 400 else { return points }
        return (0..<400).map { points[$0 * (points.count - 1) / 399] }
    }

    private static func f1(_ x: Double) -> String { String(format: "%.1f", x) }

    static func number(_ x: Double) -> String {
        let a = abs(x)
        if a >= 1000 || (a < 0.01 && a > 0) { return String(format: "%.2g", x) }
        return String(format: a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : "%.3f", x)
    }
}

/// The status page (`GET /`): one self-contained HTML document (inline CSS and SVG, thumbnails
/// as data URIs, no script, no external asset) that reloads itself every 10 seconds.
enum StatusPage {
    static func render(_ s: RunStatus) -> String {
        let t = s.training
        let history = s.history ?? []
        func series(_ tag: String) -> [(x: Double, y: Double)] {
            history.compactMap { r in r.values[tag].map { (Double(r.step), Double($0)) } }
        }
        let badge: String
        if t.collapse {
            badge = "<span class=\"badge bad\">collapse alarm</span>"
        } else if t.std_ratio == nil {
            badge = "<span class=\"badge muted\">no health signal yet</span>"
        } else {
            badge = "<span class=\"badge ok\">no collapse</span>"
        }
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>ssl-daemon: step \(s.step), \(escapeHTML(s.state))</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:1.2em 2em;color:#1d2330;background:#fafbfc}
            h1{font-size:20px;margin:0 0 .3em}h2{font-size:16px;margin:1.4em 0 .5em}
            .muted{color:#6b7280;fill:#6b7280}.badge{display:inline-block;padding:.1em .6em;border-radius:1em;font-weight:600;margin-left:.5em}
            .ok{background:#dcfce7;color:#166534}.bad{background:#fee2e2;color:#991b1b}.badge.muted{background:#e5e7eb}
            .kpis{display:flex;flex-wrap:wrap;gap:.6em 1.6em;margin:.6em 0}.kpis div b{display:block;font-size:18px}
            .plots{display:flex;flex-wrap:wrap;gap:12px}.plot{background:#fff;border:1px solid #e5e7eb;border-radius:6px}
            .plot .title{font-weight:600;font-size:12px;fill:#1d2330}.plot .axis{font-size:10px;fill:#6b7280}
            .plot .frame{fill:none;stroke:#e5e7eb}.plot .line{fill:none;stroke:#2563eb;stroke-width:1.6}
            .plot .reference{fill:none;stroke:#dc2626;stroke-width:1.2;stroke-dasharray:5 4}
            table{border-collapse:collapse;background:#fff}td,th{border:1px solid #e5e7eb;padding:.25em .6em;text-align:left}
            th{background:#f3f4f6}.retrieval td{vertical-align:top;text-align:center;font-size:11px}
            .retrieval img{width:64px;height:auto;image-rendering:pixelated;display:block;margin:0 auto 2px}
            .query{outline:2px solid #2563eb}
            </style></head><body>
            <h1>ssl-daemon <span class="muted">\(escapeHTML(BuildInfo.version))</span> \(badge)</h1>
            <div class="muted">pid \(s.pid) · \(escapeHTML(s.state)) · up \(duration(s.uptime_seconds)) · updated \(escapeHTML(s.updated))\
            \(t.collapse_reason.map { " · <b>" + escapeHTML($0) + "</b>" } ?? "")</div>
            <div class="kpis">
            """
        func kpi(_ name: String, _ value: String) { html += "<div><b>\(value)</b><span class=\"muted\">\(name)</span></div>" }
        kpi("step", "\(s.step)")
        kpi("pairs/s", s.pairs_per_second.map { String(format: "%.1f", $0) } ?? "–")
        kpi("loss (chance \(t.chance_loss.map { String(format: "%.2f", $0) } ?? "–"))", t.loss.map { String(format: "%.3f", $0) } ?? "–")
        kpi("contrastive accuracy", t.accuracy.map { String(format: "%.1f %%", $0 * 100) } ?? "–")
        kpi("std × √d", t.std_ratio.map { String(format: "%.3f", $0) } ?? "–")
        kpi("effective rank", t.effective_rank.map { String(format: "%.1f", $0) } ?? "–")
        if let knn = t.knn_accuracy { kpi("kNN accuracy", String(format: "%.1f %%", knn * 100)) }
        kpi("examples trained", "\(s.pairs_trained)")
        kpi("replay buffer", "\(s.buffer.entries) · \(bytes(s.buffer.bytes)) of \(bytes(s.buffer.byte_limit))")
        if let cap = t.queue_capacity { kpi("key queue", "\(t.queue_entries ?? 0) / \(cap)") }
        html += "</div><h2>Training</h2><div class=\"plots\">"
        html += SVGPlot.render(title: "loss", series: series("loss/total"), reference: series("loss/chance"), referenceLabel: "chance ln(K+1)")
        html += SVGPlot.render(title: "contrastive accuracy", series: series("health/accuracy"), yFloor: 0)
        html += SVGPlot.render(title: "embedding std × √d", series: series("health/std_ratio"), level: 1, referenceLabel: "1/√d (healthy)", yFloor: 0)
        html += SVGPlot.render(title: "effective rank", series: series("health/effective_rank"), yFloor: 1)
        html += SVGPlot.render(title: "pairs per second", series: series("throughput/pairs_per_second"), yFloor: 0)
        let knn = series("knn/accuracy")
        if !knn.isEmpty { html += SVGPlot.render(title: "kNN accuracy", series: knn, yFloor: 0) }
        html += "</div>"

        html += "<h2>Sources</h2><table><tr><th>source</th><th>state</th><th>fps</th><th>frames</th><th>dropped</th><th>reconnects</th><th>last frame</th><th>last error</th></tr>"
        html += "<tr><td>files</td><td>\(s.files.pending > 0 ? "reading" : "idle")</td><td>–</td><td>\(s.files.ok) ok · \(s.files.bad) bad · \(s.files.failed) failed · \(s.files.pending) pending</td><td>–</td><td>–</td><td>–</td><td>–</td></tr>"
        for l in s.live {
            html += "<tr><td>\(escapeHTML(l.name)) <span class=\"muted\">\(escapeHTML(l.url))</span></td>"
            html += "<td>\(l.connected ? "<span class=\"badge ok\">connected</span>" : "<span class=\"badge bad\">disconnected</span>")</td>"
            html += "<td>\(l.fps.map { String(format: "%.1f", $0) } ?? "–")</td><td>\(l.frames)</td><td>\(l.dropped_frames)</td><td>\(l.reconnects)\(l.last_recovery_seconds.map { String(format: " · back in %.1f s", $0) } ?? "")</td>"
            html += "<td>\(l.last_frame_age_seconds.map { String(format: "%.1f s ago", $0) } ?? "–")</td><td>\(escapeHTML(l.last_error ?? "–"))</td></tr>"
        }
        html += "</table>"

        html += "<h2>Checkpoint</h2><p>"
        if let c = s.last_checkpoint {
            html += "<code>\(escapeHTML(c.path))</code>"
            if let time = c.time { html += " · written \(duration(Date().timeIntervalSince1970 - time)) ago" }
            if let seconds = c.seconds { html += String(format: " in %.2f s", seconds) }
        } else {
            html += "<span class=\"muted\">none written yet</span>"
        }
        if s.checkpoint_failures > 0 { html += " · <span class=\"badge bad\">\(s.checkpoint_failures) failed</span>" }
        html += "</p>"

        html += "<h2>Nearest neighbours</h2>"
        if let panel = s.retrieval {
            html += "<p class=\"muted\">Recent frames from the replay buffer (outlined) and their nearest neighbours among a sample of the buffer, by cosine of the embedding at step \(panel.step).</p><table class=\"retrieval\">"
            for q in panel.queries {
                html += "<tr><td>\(thumbnail(q.query, query: true))</td>"
                for n in q.neighbours { html += "<td>\(thumbnail(n, query: false))</td>" }
                html += "</tr>"
            }
            html += "</table>"
        } else {
            html += "<p class=\"muted\">Not computed yet.</p>"
        }
        html += "<p class=\"muted\">Also: <a href=\"/metrics\">/metrics</a> · <a href=\"/api/status\">/api/status</a> · <a href=\"/healthz\">/healthz</a></p></body></html>\n"
        return html
    }

    private static func thumbnail(_ item: RetrievalPanel.Item, query: Bool) -> String {
        let label = "source \(item.source) · \(String(format: "%.1f", item.time)) s" + (item.cosine.map { String(format: "<br>cos %.2f", $0) } ?? "<br>query")
        return "<img\(query ? " class=\"query\"" : "") alt=\"frame\" src=\"data:image/png;base64,\(item.png)\">\(label)"
    }

    private static func bytes(_ n: Int) -> String {
        n >= 1 << 30 ? String(format: "%.1f GiB", Double(n) / Double(1 << 30)) : String(format: "%.0f MiB", Double(n) / Double(1 << 20))
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(max(0, seconds))
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        return String(format: "%.1f h", Double(s) / 3600)
    }
}

/// `s` with HTML's special characters escaped, for text and attribute values.
func escapeHTML(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(c)
        }
    }
    return out
}
