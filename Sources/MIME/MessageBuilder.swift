import Foundation

/// A file carried by a message.
public struct Attachment: Sendable, Equatable {
    public var filename: String
    public var contentType: String
    public var data: [UInt8]
    /// Inline parts with a Content-ID are shown within the HTML (`cid:` URLs).
    public var inline: Bool
    public var contentID: String?

    public init(filename: String, contentType: String? = nil, data: [UInt8], inline: Bool = false, contentID: String? = nil) {
        self.filename = filename
        self.contentType = contentType ?? Attachment.guessType(filename)
        self.data = data
        self.inline = inline
        self.contentID = contentID
    }

    static func guessType(_ filename: String) -> String {
        switch filename.split(separator: ".").last?.lowercased() ?? "" {
        case "pdf": return "application/pdf"
        case "png": return "image/png"
        case "jpg", "jpeg": return "image/jpeg"
        case "gif": return "image/gif"
        case "txt": return "text/plain"
        case "csv": return "text/csv"
        case "html", "htm": return "text/html"
        case "zip": return "application/zip"
        default: return "application/octet-stream"
        }
    }
}

/// Everything a structured API request says about one message.
public struct Composition: Sendable, Equatable {
    public var from: NameAddress
    public var to: [NameAddress] = []
    public var cc: [NameAddress] = []
    /// Envelope-only recipients: never written into a header.
    public var bcc: [NameAddress] = []
    public var replyTo: [NameAddress] = []
    public var subject: String
    public var text: String?
    public var html: String?
    public var attachments: [Attachment] = []
    /// Extra header fields, in order (X-…, List-Unsubscribe, …).
    public var headers: [(name: String, value: String)] = []
    public var charset: Charset = .utf8

    public init(from: NameAddress, subject: String) {
        self.from = from
        self.subject = subject
    }

    /// Every envelope recipient, Bcc included.
    public var recipients: [String] { (to + cc + bcc).map(\.address) }

    public static func == (lhs: Composition, rhs: Composition) -> Bool {
        lhs.from == rhs.from && lhs.to == rhs.to && lhs.cc == rhs.cc && lhs.bcc == rhs.bcc && lhs.replyTo == rhs.replyTo
            && lhs.subject == rhs.subject && lhs.text == rhs.text && lhs.html == rhs.html && lhs.attachments == rhs.attachments
            && lhs.headers.map(\.name) == rhs.headers.map(\.name) && lhs.headers.map(\.value) == rhs.headers.map(\.value)
            && lhs.charset == rhs.charset
    }
}

/// Builds an RFC 5322 / MIME message from a Composition: multipart/alternative
/// for text with HTML, multipart/related for inline images, multipart/mixed
/// for attachments. Every field is checked: a CR or LF anywhere in a header
/// value is an error, so header injection cannot happen.
public struct MessageBuilder: Sendable {
    /// Header fields the builder writes itself; callers cannot set or override them.
    static let reserved: Set<String> = [
        "from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "mime-version",
        "content-type", "content-transfer-encoding", "received", "dkim-signature", "return-path",
    ]

    public var hostname: String

    public init(hostname: String) {
        self.hostname = hostname
    }

    /// 128 random bits as 32 lower-case hex digits, for Message-IDs and boundaries, from the system's
    /// generator (Foundation's `UUID()` opens, reads and closes /dev/urandom each time: three system
    /// calls per message).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let high: UInt64 = generator.next(), low: UInt64 = generator.next()
        let hex = String(high, radix: 16), rest = String(low, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + String(repeating: "0", count: 16 - rest.count) + rest
    }

    /// The message, CRLF line endings, and its Message-ID (without brackets).
    public func build(_ composition: Composition, date: Date = Date(), messageID: String? = nil) throws(MIMEError)
        -> (bytes: [UInt8], messageID: String) {
        guard !composition.recipients.isEmpty else { throw .noRecipients }
        let charset = composition.charset
        try MIMEError.checkNoLineBreak(composition.subject, field: "subject")
        let id = messageID ?? "\(MessageBuilder.randomToken())@\(hostname)"
        try MIMEError.checkNoLineBreak(id, field: "message id")

        var header = HeaderWriter()
        header.add("From", try composition.from.render(charset: charset))
        if !composition.to.isEmpty { header.add("To", try composition.to.map { a throws(MIMEError) in try a.render(charset: charset) }.joined(separator: ",\r\n ")) }
        if !composition.cc.isEmpty { header.add("Cc", try composition.cc.map { a throws(MIMEError) in try a.render(charset: charset) }.joined(separator: ",\r\n ")) }
        if !composition.replyTo.isEmpty {
            header.add("Reply-To", try composition.replyTo.map { a throws(MIMEError) in try a.render(charset: charset) }.joined(separator: ",\r\n "))
        }
        header.add("Subject", try EncodedWord.encode(composition.subject, charset: charset))
        header.add("Date", MailDate.rfc5322(date))
        header.add("Message-ID", "<\(id)>")
        for (name, value) in composition.headers {
            guard MessageBuilder.isFieldName(name) else { throw .invalidHeaderName(name) }
            guard !MessageBuilder.reserved.contains(name.lowercased()) else { throw .reservedHeader(name) }
            try MIMEError.checkNoLineBreak(value, field: "header \(name)")
            header.add(name, try EncodedWord.encode(value, charset: charset))
        }
        header.add("MIME-Version", "1.0")

        let body = try bodyPart(composition)
        var output = header.bytes
        output.append(contentsOf: body.headers.bytes)
        output.append(contentsOf: [0x0D, 0x0A])
        output.append(contentsOf: body.content)
        return (output, id)
    }

    /// A MIME entity: its Content-* header fields and its encoded content.
    struct Part {
        var headers: HeaderWriter
        var content: [UInt8]
    }

    func bodyPart(_ composition: Composition) throws(MIMEError) -> Part {
        let charset = composition.charset
        var alternatives: [Part] = []
        if let text = composition.text { alternatives.append(try textPart(text, subtype: "plain", charset: charset)) }
        if let html = composition.html { alternatives.append(try textPart(html, subtype: "html", charset: charset)) }
        let inline = composition.attachments.filter { $0.inline }
        let attached = composition.attachments.filter { !$0.inline }
        guard !alternatives.isEmpty || !composition.attachments.isEmpty else { throw .noBody }

        var body: Part? = alternatives.count > 1 ? multipart("alternative", alternatives) : alternatives.first
        if !inline.isEmpty {
            let related = try inline.map { a throws(MIMEError) in try attachmentPart(a, charset: charset) }
            body = multipart("related", (body.map { [$0] } ?? []) + related)
        }
        if !attached.isEmpty {
            let parts = try attached.map { a throws(MIMEError) in try attachmentPart(a, charset: charset) }
            body = multipart("mixed", (body.map { [$0] } ?? []) + parts)
        }
        guard let body else { throw .noBody }
        return body
    }

    func textPart(_ text: String, subtype: String, charset: Charset) throws(MIMEError) -> Part {
        let bytes = MessageBuilder.crlf(try charset.encode(text))
        var encoding = TransferEncoding.choose(for: bytes, isText: true, escapesAllowed: charset == .iso2022JP)
        // ISO-2022-JP is sent as 7bit (RFC 1468); base64 only when a line is too long.
        if charset == .iso2022JP && encoding == .quotedPrintable { encoding = .base64 }
        var headers = HeaderWriter()
        headers.add("Content-Type", "text/\(subtype); charset=\(charset.rawValue)")
        headers.add("Content-Transfer-Encoding", encoding.rawValue)
        var content = encoding.encode(bytes)
        if content.last != 0x0A { content.append(contentsOf: [0x0D, 0x0A]) }
        return Part(headers: headers, content: content)
    }

    func attachmentPart(_ attachment: Attachment, charset: Charset) throws(MIMEError) -> Part {
        try MIMEError.checkNoLineBreak(attachment.filename, field: "attachment filename")
        try MIMEError.checkNoLineBreak(attachment.contentType, field: "attachment content type")
        guard MessageBuilder.isMediaType(attachment.contentType) else { throw .invalidHeaderName(attachment.contentType) }
        let name = MessageBuilder.parameter(attachment.filename, charset: charset)
        var headers = HeaderWriter()
        headers.add("Content-Type", "\(attachment.contentType); name=\(name)")
        headers.add("Content-Disposition", "\(attachment.inline ? "inline" : "attachment"); filename=\(name)")
        headers.add("Content-Transfer-Encoding", "base64")
        if let contentID = attachment.contentID {
            try MIMEError.checkNoLineBreak(contentID, field: "content id")
            let bare = contentID.trimmingCharacters(in: CharacterSet(charactersIn: "<>"))
            guard !bare.isEmpty, bare.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "<" && $0 != ">" })
            else { throw .invalidHeaderName(contentID) }
            headers.add("Content-ID", "<\(bare)>")
        }
        return Part(headers: headers, content: Base64Lines.encode(attachment.data))
    }

    func multipart(_ subtype: String, _ parts: [Part]) -> Part {
        let boundary = "=_hikyaku_" + MessageBuilder.randomToken()
        var headers = HeaderWriter()
        headers.add("Content-Type", "multipart/\(subtype); boundary=\"\(boundary)\"")
        var content: [UInt8] = []
        for part in parts {
            content.append(contentsOf: Array("--\(boundary)\r\n".utf8))
            content.append(contentsOf: part.headers.bytes)
            content.append(contentsOf: [0x0D, 0x0A])
            content.append(contentsOf: part.content)
        }
        content.append(contentsOf: Array("--\(boundary)--\r\n".utf8))
        return Part(headers: headers, content: content)
    }

    /// Line breaks as CRLF whatever the caller sent (CR, LF or CRLF). Safe on
    /// encoded bytes: neither UTF-8 nor ISO-2022-JP uses 0x0D/0x0A inside a character.
    static func crlf(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + bytes.count / 32)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0D || byte == 0x0A {
                output.append(0x0D)
                output.append(0x0A)
                if byte == 0x0D, index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
            } else {
                output.append(byte)
            }
            index += 1
        }
        return output
    }

    /// A parameter value: a quoted string for ASCII, else an encoded word in
    /// quotes (what mail clients read for file names, RFC 2231 being less supported).
    static func parameter(_ value: String, charset: Charset) -> String {
        if value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }),
           !value.split(separator: " ").contains(where: { $0.utf8.count > EncodedWord.maximumWord }) {
            return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        let encoded = (try? EncodedWord.encode(value, charset: charset)) ?? (try? EncodedWord.encode(value, charset: .utf8)) ?? "file"
        return "\"" + encoded.replacingOccurrences(of: "\r\n ", with: " ") + "\""
    }

    /// RFC 5322 §3.6.8 field-name: printable ASCII but ":".
    static func isFieldName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 76 && name.unicodeScalars.allSatisfy { $0.value >= 0x21 && $0.value <= 0x7E && $0 != ":" }
    }

    static func isMediaType(_ type: String) -> Bool {
        let parts = type.split(separator: "/")
        let token = { (part: Substring) in
            !part.isEmpty && part.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && !"()<>@,;:\\\"/[]?=".unicodeScalars.contains($0) }
        }
        return parts.count == 2 && token(parts[0]) && token(parts[1])
    }
}

/// Header fields in order; values are already checked and encoded, and
/// folded here (RFC 5322 §2.2.3) before a space wherever a line would pass
/// 78 characters, so that no line passes 998 (values hold no run longer
/// than `EncodedWord.maximumWord`).
struct HeaderWriter {
    private(set) var bytes: [UInt8] = []

    init() {
        bytes.reserveCapacity(1024)
    }

    mutating func add(_ name: String, _ value: String) {
        if name.utf8.count + 2 + value.utf8.count <= 78 {
            // Short enough that `fold` would return it as it is: written without the intermediate copies.
            bytes.append(contentsOf: name.utf8)
            bytes.append(contentsOf: [0x3A, 0x20])
            bytes.append(contentsOf: value.utf8)
        } else {
            bytes.append(contentsOf: HeaderWriter.fold(Array("\(name): \(value)".utf8)))
        }
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    /// Breaks a field's line before the last space that keeps it within 78
    /// octets; a line already folded (CRLF and white space) starts afresh.
    static func fold(_ field: [UInt8]) -> [UInt8] {
        guard field.count > 78 else { return field }
        var output: [UInt8] = []
        output.reserveCapacity(field.count + field.count / 30)
        var lineStart = 0
        var lastSpace: Int?
        // No fold before the value's first word: `Subject:` alone on a line reads back with a leading space.
        let valueStart = (field.firstIndex(of: UInt8(ascii: ":")) ?? 0) + 2
        for byte in field {
            if byte == 0x0A {
                output.append(byte)
                lineStart = output.count
                lastSpace = nil
                continue
            }
            // A space at the start of a continuation line is its folding white space, not a place to fold.
            if byte == 0x20 && output.count > lineStart + 1 && output.count > valueStart { lastSpace = output.count }
            output.append(byte)
            if output.count - lineStart > 78, let space = lastSpace {
                output.insert(contentsOf: [0x0D, 0x0A], at: space)
                lineStart = space + 2
                lastSpace = nil
            }
        }
        return output
    }
}
