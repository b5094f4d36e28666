#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Header fields the intake adds in front of a message: a `Received:` trace
/// field (RFC 5321 §4.4, with the RFC 3848 / RFC 6531 protocol type), and a
/// `Message-ID:` and `Date:` when the client left them out (RFC 5322 §3.6,
/// as a submission server may, RFC 6409 §8).
public struct TraceFields: Sendable {
    public var hostname: String
    public var heloName: String
    public var clientAddress: String
    public var extended: Bool
    public var tls: Bool
    /// The TLS version and cipher, when known, for the comment.
    public var tlsDescription: String?
    public var authenticatedAs: String?
    public var smtpUTF8: Bool
    public var queueID: String
    /// Named in a `for` clause only when there is exactly one recipient, so
    /// that the other recipients of a message are not disclosed.
    public var recipients: [String]
    public var unixTime: Int

    public init(hostname: String, heloName: String, clientAddress: String, extended: Bool, tls: Bool,
                tlsDescription: String?, authenticatedAs: String?, smtpUTF8: Bool, queueID: String,
                recipients: [String], unixTime: Int) {
        self.hostname = hostname
        self.heloName = heloName
        self.clientAddress = clientAddress
        self.extended = extended
        self.tls = tls
        self.tlsDescription = tlsDescription
        self.authenticatedAs = authenticatedAs
        self.smtpUTF8 = smtpUTF8
        self.queueID = queueID
        self.recipients = recipients
        self.unixTime = unixTime
    }

    /// RFC 3848 §2 and RFC 6531 §3.7.3 "with" keywords.
    public var protocolType: String {
        guard extended else { return "SMTP" }
        var keyword = smtpUTF8 ? "UTF8SMTP" : "ESMTP"
        if tls { keyword += "S" }
        if authenticatedAs != nil { keyword += "A" }
        return keyword
    }

    /// The prefix to store before the message, CRLF-terminated lines.
    public func render(summary: HeaderSummary) -> [UInt8] {
        let date = TraceFields.rfc5322Date(unixTime)
        var received = "Received: from \(TraceFields.clean(heloName)) ([\(clientAddress)])\r\n"
        received += "\tby \(hostname) (Hikyaku) with \(protocolType) id \(queueID)"
        var comments: [String] = []
        if let tlsDescription { comments.append(tlsDescription) }
        if let authenticatedAs { comments.append("authenticated sender: \(TraceFields.clean(authenticatedAs))") }
        if !comments.isEmpty { received += "\r\n\t(\(comments.joined(separator: "; ")))" }
        if recipients.count == 1, let recipient = recipients.first { received += "\r\n\tfor <\(recipient)>" }
        received += ";\r\n\t\(date)\r\n"
        if !summary.hasMessageID { received += "Message-ID: <\(queueID)@\(hostname)>\r\n" }
        if !summary.hasDate { received += "Date: \(date)\r\n" }
        return Array(received.utf8)
    }

    /// Only printable ASCII without parentheses: client-chosen text cannot
    /// break out of the field or its comment.
    static func clean(_ text: String) -> String {
        String(text.unicodeScalars.map { scalar -> Character in
            (scalar.value > 32 && scalar.value < 127 && scalar != "(" && scalar != ")" && scalar != ";") ? Character(scalar) : "_"
        })
    }

    /// RFC 5322 §3.3 date-time in UTC, e.g. `Sun, 29 Nov 2026 08:26:01 +0000`.
    public static func rfc5322Date(_ unixTime: Int) -> String {
        var time = time_t(unixTime)
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(parts.tm_mday) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }
}
