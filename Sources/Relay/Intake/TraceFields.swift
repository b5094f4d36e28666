import Foundation
import MIME

/// The `Received:` trace field an SMTP session's message gets (RFC 5321
/// §4.4), with the RFC 3848 / RFC 6531 protocol type.
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
    public var date: Date

    public init(hostname: String, heloName: String, clientAddress: String, extended: Bool, tls: Bool,
                tlsDescription: String?, authenticatedAs: String?, smtpUTF8: Bool, queueID: String,
                recipients: [String], date: Date) {
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
        self.date = date
    }

    /// RFC 3848 §2 and RFC 6531 §3.7.3 "with" keywords.
    public var protocolType: String {
        guard extended else { return "SMTP" }
        var keyword = smtpUTF8 ? "UTF8SMTP" : "ESMTP"
        if tls { keyword += "S" }
        if authenticatedAs != nil { keyword += "A" }
        return keyword
    }

    /// The field, CRLF-terminated lines.
    public var received: String {
        var received = "Received: from \(TraceFields.clean(heloName)) ([\(clientAddress)])\r\n"
        received += "\tby \(hostname) (Hikyaku) with \(protocolType) id \(queueID)"
        var comments: [String] = []
        if let tlsDescription { comments.append(tlsDescription) }
        if let authenticatedAs { comments.append("authenticated sender: \(TraceFields.clean(authenticatedAs))") }
        if !comments.isEmpty { received += "\r\n\t(\(comments.joined(separator: "; ")))" }
        if recipients.count == 1, let recipient = recipients.first { received += "\r\n\tfor <\(recipient)>" }
        return received + ";\r\n\t\(MailDate.rfc5322(date))\r\n"
    }

    /// Only printable ASCII without parentheses: client-chosen text cannot
    /// break out of the field or its comment.
    static func clean(_ text: String) -> String {
        String(text.unicodeScalars.map { scalar -> Character in
            (scalar.value > 32 && scalar.value < 127 && scalar != "(" && scalar != ")" && scalar != ";") ? Character(scalar) : "_"
        })
    }
}
