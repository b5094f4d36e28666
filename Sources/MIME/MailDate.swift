import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Dates as mail and the APIs write them, in UTC. Formatted by hand from
/// `gmtime_r`: building a DateFormatter costs more than building a whole
/// message, and a batch builds a thousand.
public enum MailDate {
    static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// RFC 5322 §3.3: `Sun, 29 Nov 2026 06:25:59 +0000`.
    public static func rfc5322(_ date: Date) -> String {
        let parts = broken(date)
        return "\(days[(Int(parts.tm_wday) % 7 + 7) % 7]), \(two(parts.tm_mday)) \(months[(Int(parts.tm_mon) % 12 + 12) % 12]) \(Int(parts.tm_year) + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }

    /// ISO 8601 with milliseconds: `2026-11-29T06:25:59.123Z`.
    public static func iso8601(_ date: Date) -> String {
        let parts = broken(date)
        let milliseconds = Int(((seconds(date) * 1000).rounded()).truncatingRemainder(dividingBy: 1000) + 1000) % 1000
        let year = String(Int(parts.tm_year) + 1900)
        return "\(String(repeating: "0", count: max(0, 4 - year.count)))\(year)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(three(milliseconds))Z"
    }

    /// A local time as people read it, `2026-11-29 15:25:59` (or fewer fields by `style`), at `offset` seconds from UTC.
    public enum LocalStyle: Sendable {
        case seconds, hour, day
    }

    public static func local(_ date: Date, offset: Int, style: LocalStyle = .seconds) -> String {
        let parts = broken(date.addingTimeInterval(TimeInterval(offset)))
        let year = String(Int(parts.tm_year) + 1900)
        switch style {
        case .seconds:
            return "\(year)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
        case .hour: return "\(two(parts.tm_hour)):00"
        case .day: return "\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))"
        }
    }

    /// Seconds since 1970 within years 1 to 9999, the dates these formats
    /// can write: a stored or requested time outside them (a `send_at` of
    /// 10^16) is written as the nearest end, never converted with a trap.
    static func seconds(_ date: Date) -> Double {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite else { return 0 }
        return min(max(seconds, -62_135_596_800), 253_402_300_799)
    }

    static func broken(_ date: Date) -> tm {
        // Whole seconds of the millisecond-rounded time, as iso8601 prints them.
        var time = time_t(((seconds(date) * 1000).rounded() / 1000).rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        return parts
    }

    static func two(_ value: Int32) -> String { value >= 0 && value < 10 ? "0\(value)" : String(value) }
    static func three(_ value: Int) -> String { value < 10 ? "00\(value)" : value < 100 ? "0\(value)" : String(value) }
}
