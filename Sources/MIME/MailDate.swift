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
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }

    /// ISO 8601 with milliseconds: `2026-11-29T06:25:59.123Z`.
    public static func iso8601(_ date: Date) -> String {
        let parts = broken(date)
        let milliseconds = Int(Int64((date.timeIntervalSince1970 * 1000).rounded()) % 1000 + 1000) % 1000
        let year = String(parts.tm_year + 1900)
        return "\(String(repeating: "0", count: max(0, 4 - year.count)))\(year)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(three(milliseconds))Z"
    }

    static func broken(_ date: Date) -> tm {
        // Whole seconds of the millisecond-rounded time, as iso8601 prints them.
        var time = time_t(((date.timeIntervalSince1970 * 1000).rounded() / 1000).rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        return parts
    }

    static func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : String(value) }
    static func three(_ value: Int) -> String { value < 10 ? "00\(value)" : value < 100 ? "0\(value)" : String(value) }
}
