import Foundation
import MIME
import SMTPCore

/// Builds the RFC 3464 delivery status notification sent to the envelope
/// sender when recipients bounce or expire, or (optionally) are still
/// delayed after a while: multipart/report with a human part, the
/// machine-readable message/delivery-status, and the original header
/// section (text/rfc822-headers, RFC 6522), never the whole body.
public struct DeliveryStatusNotification: Sendable {
    public struct ReportedRecipient: Sendable, Equatable {
        public var address: String
        /// `failed` for bounces and expiries, `delayed` for a warning (RFC 3464 §2.3.3).
        public var action: String
        public var reply: Reply
        public var remoteMTA: String?
        /// For `delayed`: when the relay gives up (RFC 3464 §2.3.9).
        public var willRetryUntil: Date?

        public init(address: String, action: String = "failed", reply: Reply, remoteMTA: String? = nil, willRetryUntil: Date? = nil) {
            self.address = address
            self.action = action
            self.reply = reply
            self.remoteMTA = remoteMTA
            self.willRetryUntil = willRetryUntil
        }
    }

    public var reportingMTA: String
    public var originalMessageID: String
    public var arrivalDate: Date
    public var recipients: [ReportedRecipient]
    /// Only delays are reported: a warning, not a failure.
    var isDelayWarning: Bool { recipients.allSatisfy { $0.action == "delayed" } }

    public init(reportingMTA: String, originalMessageID: String, arrivalDate: Date, recipients: [ReportedRecipient]) {
        self.reportingMTA = reportingMTA
        self.originalMessageID = originalMessageID
        self.arrivalDate = arrivalDate
        self.recipients = recipients
    }

    /// The DSN as message bytes (CRLF lines) addressed to `sender`.
    public func render(to sender: String, originalMessage: [UInt8], now: Date, dsnID: String) -> [UInt8] {
        let boundary = "=_hikyaku_dsn_\(dsnID)"
        let date = MailDate.rfc5322(now)
        var lines: [String] = [
            "From: Mail Delivery System <MAILER-DAEMON@\(reportingMTA)>",
            "To: <\(Self.clean(sender))>",
            "Subject: \(isDelayWarning ? "Delayed Mail (still being retried)" : "Undelivered Mail Returned to Sender")",
            "Date: \(date)",
            "Message-ID: <\(dsnID)@\(reportingMTA)>",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"\(boundary)\"",
            "",
            "This is a MIME-encapsulated message.",
            "",
            "--\(boundary)",
            "Content-Type: text/plain; charset=us-ascii",
            "",
            isDelayWarning
                ? "Your message has not been delivered to the following recipients yet. It is still being retried; no action is needed unless it fails:"
                : "Your message could not be delivered to the following recipients:",
            "",
        ]
        for recipient in recipients {
            var line = "<\(Self.clean(recipient.address))>: \(Self.clean(recipient.reply.description))"
            if let until = recipient.willRetryUntil { line += " (retrying until \(MailDate.rfc5322(until)))" }
            lines.append(line)
        }
        lines += [
            "",
            "--\(boundary)",
            "Content-Type: message/delivery-status",
            "",
            "Reporting-MTA: dns; \(reportingMTA)",
            "X-Hikyaku-Queue-ID: \(originalMessageID)",
            "Arrival-Date: \(MailDate.rfc5322(arrivalDate))",
        ]
        for recipient in recipients {
            let status = recipient.reply.enhancedCode?.description ?? (recipient.reply.isPermanentFailure ? "5.0.0" : "4.0.0")
            lines += [
                "",
                "Final-Recipient: rfc822; \(Self.clean(recipient.address))",
                "Action: \(recipient.action)",
                "Status: \(status)",
            ]
            if let remote = recipient.remoteMTA { lines.append("Remote-MTA: dns; \(Self.clean(remote))") }
            lines.append("Diagnostic-Code: smtp; \(Self.diagnostic(recipient.reply))")
            if let until = recipient.willRetryUntil {
                lines.append("Will-Retry-Until: \(MailDate.rfc5322(until))")
            }
        }
        lines += ["", "--\(boundary)", "Content-Type: text/rfc822-headers", ""]
        var output = Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
        output += Self.headerSection(of: originalMessage)
        output += Array("\r\n--\(boundary)--\r\n".utf8)
        return output
    }

    /// RFC 3464 §2.3.6: the remote reply verbatim, enhanced code included
    /// (`550 5.2.0 Unknown user x`), a multi-line reply on one line.
    static func diagnostic(_ reply: Reply) -> String {
        let enhanced = reply.enhancedCode.map { " \($0)" } ?? ""
        return "\(reply.code)\(enhanced) \(clean(reply.lines.joined(separator: " ")))"
    }

    /// The original's header section, CRLF-terminated, without the blank line.
    static func headerSection(of message: [UInt8]) -> [UInt8] {
        guard let header = try? HeaderSection(parsing: message) else { return message }
        // The section's last line ends with the CRLF before the empty line.
        return Array(message[..<min(message.count, header.end)])
    }

    /// Printable ASCII only: remote reply text must not break the report's lines.
    static func clean(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value >= 32 && $0.value < 127 ? Character($0) : "?" })
    }
}
