import Foundation
import MIME

/// A bar chart drawn on the server as SVG: no script, no build chain. It has
/// a title and a description for screen readers, axis labels, and the
/// numbers are also in a table the page puts beside it. Colours are
/// presentation attributes, so the strict CSP (no inline style) holds.
struct SVGChart: Sendable {
    struct Series: Sendable {
        var name: String
        var colour: String
        var values: [Int]
    }

    var title: String
    var xLabel: String
    var yLabel: String
    /// One label per column.
    var labels: [String]
    var series: [Series]

    static let palette = ["#1b6ac9", "#2e8540", "#b26a00", "#c62828", "#6a1b9a", "#00838f", "#5d4037", "#37474f"]

    /// Stacked bars, one column per label.
    var svg: String {
        let width = 720.0, height = 260.0, left = 56.0, right = 12.0, top = 28.0, bottom = 48.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let totals = labels.indices.map { index in series.reduce(0) { $0 + ($1.values.indices.contains(index) ? $1.values[index] : 0) } }
        let maximum = max(1, totals.max() ?? 1)
        let scale = SVGChart.niceCeiling(maximum)
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(width)) \(Int(height + 24 * Double((series.count + 3) / 4)))\" "
        out += "role=\"img\" aria-labelledby=\"chart-title chart-desc\" class=\"chart\">"
        out += "<title id=\"chart-title\">\(SVGChart.escape(title))</title>"
        out += "<desc id=\"chart-desc\">\(SVGChart.escape(yLabel)) / \(SVGChart.escape(xLabel))</desc>"
        // Grid and the y axis's scale.
        // Whole numbers on every grid line: 5 steps for 10, 20, 50…; 4 for 4, 8, 40…; one per unit below 5.
        let steps = scale <= 5 ? scale : (scale % 5 == 0 ? 5 : 4)
        for step in 0...steps {
            let value = scale * step / steps
            let y = top + plotHeight - plotHeight * Double(step) / Double(steps)
            out += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(width - right)\" y2=\"\(y)\" stroke=\"#d0d4d9\" stroke-width=\"1\"/>"
            out += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\" font-size=\"11\" fill=\"#333\">\(ConsoleFormat.number(value))</text>"
        }
        let slot = plotWidth / Double(max(1, labels.count))
        let barWidth = max(1, slot * 0.7)
        for (index, label) in labels.enumerated() {
            var base = top + plotHeight
            let x = left + slot * Double(index) + (slot - barWidth) / 2
            for item in series {
                let value = item.values.indices.contains(index) ? item.values[index] : 0
                guard value > 0 else { continue }
                let barHeight = plotHeight * Double(value) / Double(scale)
                base -= barHeight
                out += "<rect x=\"\(SVGChart.round(x))\" y=\"\(SVGChart.round(base))\" width=\"\(SVGChart.round(barWidth))\" "
                out += "height=\"\(SVGChart.round(barHeight))\" fill=\"\(item.colour)\">"
                out += "<title>\(SVGChart.escape(label)) \(SVGChart.escape(item.name)): \(ConsoleFormat.number(value))</title></rect>"
            }
            // Every label when they fit, else every n-th.
            let every = max(1, labels.count / 12)
            if index % every == 0 {
                out += "<text x=\"\(SVGChart.round(x + barWidth / 2))\" y=\"\(top + plotHeight + 16)\" text-anchor=\"middle\" "
                out += "font-size=\"11\" fill=\"#333\">\(SVGChart.escape(label))</text>"
            }
        }
        out += "<text x=\"\(left + plotWidth / 2)\" y=\"\(height - 8)\" text-anchor=\"middle\" font-size=\"12\" fill=\"#111\">"
        out += "\(SVGChart.escape(xLabel))</text>"
        out += "<text x=\"14\" y=\"\(top + plotHeight / 2)\" text-anchor=\"middle\" font-size=\"12\" fill=\"#111\" "
        out += "transform=\"rotate(-90 14 \(top + plotHeight / 2))\">\(SVGChart.escape(yLabel))</text>"
        // The legend, four to a row.
        for (index, item) in series.enumerated() {
            let x = left + Double(index % 4) * 160, y = height + 4 + Double(index / 4) * 22
            out += "<rect x=\"\(x)\" y=\"\(y)\" width=\"12\" height=\"12\" fill=\"\(item.colour)\"/>"
            out += "<text x=\"\(x + 18)\" y=\"\(y + 11)\" font-size=\"12\" fill=\"#111\">\(SVGChart.escape(item.name))</text>"
        }
        out += "</svg>"
        return out
    }

    /// The table of the same numbers, for the page to show beside the chart: HTML written here, escaped,
    /// as the chart is (through Mustache its 38 rows of 7 cells were most of the overview's rendering).
    func table(period: String) -> String {
        var out = "<table>\n  <caption>\(SVGChart.escape(title))</caption>\n  <thead><tr><th scope=\"col\">\(SVGChart.escape(period))</th>"
        for item in series { out += "<th scope=\"col\">\(SVGChart.escape(item.name))</th>" }
        out += "</tr></thead>\n  <tbody>"
        for (index, label) in labels.enumerated() {
            out += "<tr><th scope=\"row\">\(SVGChart.escape(label))</th>"
            for item in series {
                out += "<td class=\"num\">\(ConsoleFormat.number(item.values.indices.contains(index) ? item.values[index] : 0))</td>"
            }
            out += "</tr>"
        }
        return out + "</tbody>\n</table>"
    }

    static func niceCeiling(_ value: Int) -> Int {
        var magnitude = 1
        while magnitude * 10 <= value { magnitude *= 10 }
        for factor in [1, 2, 4, 5, 10] where magnitude * factor >= value { return magnitude * factor }
        return magnitude * 10
    }

    /// One decimal, written by hand (`String(format:)` was two thirds of the chart's cost on Linux).
    static func round(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        guard let whole = Int64(exactly: (value * 10).rounded()), whole.magnitude < 1_000_000_000_000_000 else { return "0" }
        let sign = whole < 0 ? "-" : ""
        return "\(sign)\(whole.magnitude / 10).\(whole.magnitude % 10)"
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}

/// Numbers and times as the console shows them: separators, ISO dates in the viewer's zone.
enum ConsoleFormat {
    static func number(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
            out.append(digit)
        }
        return value < 0 ? "-" + out : out
    }

    // Formatted by hand at the zone's offset for that moment: a DateFormatter per value cost the log page
    // (50 rows) and the overview (38 labels) a few milliseconds each.
    static func time(_ date: Date, _ zone: TimeZone) -> String {
        MailDate.local(date, offset: zone.secondsFromGMT(for: date))
    }

    static func hour(_ date: Date, _ zone: TimeZone) -> String { MailDate.local(date, offset: zone.secondsFromGMT(for: date), style: .hour) }
    static func day(_ date: Date, _ zone: TimeZone) -> String { MailDate.local(date, offset: zone.secondsFromGMT(for: date), style: .day) }

    /// A `datetime-local` input's value (no zone) read in the viewer's zone.
    static func localInput(_ text: String?, _ zone: TimeZone) -> Date? {
        guard let text, !text.isEmpty else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        for format in ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }
}
