import Foundation
import MIME
import SMTPCore

/// What a message sent to the bounce domain reports: a delivery failure
/// (an RFC 3464 DSN, or a plain-text bounce quoting the remote reply), or a
/// complaint (an RFC 5965 ARF report).
public struct FeedbackReport: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case bounce
        case complaint(feedbackType: String)
    }

    public var kind: Kind
    /// `Action:` of a DSN (failed, delayed, delivered…); nil for other formats.
    public var action: String?
    public var replyCode: Int?
    public var enhancedCode: EnhancedStatusCode?
    /// The remote reply or diagnostic, as reported.
    public var text: String
    /// The command the reply answered, when the report says so ("in reply to end of DATA command",
    /// Exim's "after RCPT TO:"): `CONNECT`, `EHLO`, `MAIL`, `RCPT` or `DATA`. Nil when it does not, or
    /// names more than one (a report for several recipients refused at different commands).
    public var command: String? = nil
    /// Return-path addresses found in the report's copy of the original
    /// message (for reports not sent to the return path itself, e.g. ARF).
    public var returnPaths: [String]

    /// Reads a report; nil when the message is none of the known kinds
    /// (or its header section is malformed).
    public static func parse(_ message: [UInt8]) -> FeedbackReport? {
        guard let entity = MIMEEntity(message[...]) else { return nil }
        let contentType = entity.contentType
        if contentType.type == "multipart/report" {
            let parts = entity.parts
            let reportType = contentType.parameters["report-type"]?.lowercased()
            if reportType == "feedback-report" || parts.contains(where: { $0.contentType.type == "message/feedback-report" }) {
                return arf(parts)
            }
            if let status = parts.first(where: { $0.contentType.type == "message/delivery-status" }) {
                return dsn(status, parts: parts)
            }
        }
        return plainBounce(entity)
    }

    static func dsn(_ status: MIMEEntity, parts: [MIMEEntity]) -> FeedbackReport? {
        // Per-message fields, then one block per recipient: the first recipient block that failed or was delayed.
        let blocks = MIMEEntity.fieldBlocks(status.body)
        let recipient = blocks.dropFirst().first { $0["action"]?.lowercased().hasPrefix("failed") == true }
            ?? blocks.dropFirst().first { $0["status"] != nil } ?? blocks.first ?? [:]
        let statusCode = recipient["status"].flatMap { enhanced($0.split(separator: " ").first.map(String.init) ?? "") }
        var diagnostic = recipient["diagnostic-code"] ?? ""
        if let semicolon = diagnostic.firstIndex(of: ";") { diagnostic = String(diagnostic[diagnostic.index(after: semicolon)...]) }
        diagnostic = diagnostic.trimmingCharacters(in: .whitespaces)
        let quoted = replyLine(in: diagnostic)
        var report = FeedbackReport(kind: .bounce, action: recipient["action"]?.lowercased(), replyCode: quoted?.code,
                                    enhancedCode: statusCode ?? quoted?.enhanced, text: diagnostic.isEmpty ? (recipient["status"] ?? "") : diagnostic,
                                    returnPaths: returnPaths(in: parts.dropFirst(2)))
        // The recipient's own diagnostic first, then the human-readable part (Postfix writes the command there).
        let prose = parts.first.flatMap { $0.contentType.type.hasPrefix("text/") ? String(decoding: $0.decodedBody, as: UTF8.self) : nil }
        report.command = command(in: diagnostic) ?? prose.flatMap(command(in:))
        return report
    }

    /// What reports write for the command a reply answered, and the command (Postfix: "(in reply to
    /// RCPT TO command)"; Exim: "SMTP error from remote mail server after RCPT TO:<…>").
    static let commandPhrases: [(phrase: String, command: String)] = [
        ("in reply to rcpt to", "RCPT"), ("after rcpt to", "RCPT"), ("after pipelined rcpt to", "RCPT"), ("did not like our rcpt to", "RCPT"),
        ("in reply to mail from", "MAIL"), ("after mail from", "MAIL"), ("after pipelined mail from", "MAIL"),
        ("in reply to end of data", "DATA"), ("after end of data", "DATA"), ("in reply to data", "DATA"), ("after data", "DATA"),
        ("in reply to ehlo", "EHLO"), ("in reply to helo", "EHLO"), ("after ehlo", "EHLO"), ("after helo", "EHLO"),
        ("after initial connection", "CONNECT"), ("in reply to the greeting", "CONNECT"),
    ]

    /// The one command `text` says a reply answered; nil for none, or for several. Read up to 64 KiB;
    /// a phrase counts only as whole words ("after data", not "after database" or "thereafter data").
    static func command(in text: String) -> String? {
        let lower = Array(text.utf8.prefix(64 * 1024)).map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        var named = Set<String>()
        for (phrase, command) in commandPhrases where !named.contains(command) {
            let bytes = Array(phrase.utf8)
            var start = 0
            while start + bytes.count <= lower.count {
                guard let found = lower[start...].firstRange(of: bytes) else { break }
                let end = found.upperBound, before = found.lowerBound - 1
                let isLetter = { (byte: UInt8) in byte >= 0x61 && byte <= 0x7A }
                if (end == lower.count || !isLetter(lower[end])) && (before < 0 || !isLetter(lower[before])) {
                    named.insert(command)
                    break
                }
                start = found.lowerBound + 1
            }
        }
        return named.count == 1 ? named.first : nil
    }

    static func arf(_ parts: [MIMEEntity]) -> FeedbackReport {
        let report = parts.first { $0.contentType.type == "message/feedback-report" }
        let fields = MIMEEntity.fieldBlocks(report?.body ?? []).first ?? [:]
        let type = fields["feedback-type"]?.lowercased() ?? "abuse"
        return FeedbackReport(kind: .complaint(feedbackType: type), action: nil, replyCode: nil, enhancedCode: nil,
                              text: "feedback-type=\(type)" + (fields["user-agent"].map { " from \($0)" } ?? ""),
                              returnPaths: returnPaths(in: parts.filter { $0.contentType.type != "message/feedback-report" }))
    }

    /// A bounce in prose: the first line quoting an SMTP reply (`550 5.1.1 …`).
    static func plainBounce(_ entity: MIMEEntity) -> FeedbackReport? {
        let bodies = entity.parts.isEmpty ? [entity] : entity.parts.filter { $0.contentType.type.hasPrefix("text/") }
        for body in bodies {
            let text = String(decoding: body.decodedBody, as: UTF8.self)
            let lines = text.components(separatedBy: .newlines)
            for (number, line) in lines.enumerated() {
                if let reply = replyLine(in: line) {
                    var report = FeedbackReport(kind: .bounce, action: "failed", replyCode: reply.code, enhancedCode: reply.enhanced,
                                                text: line.trimmingCharacters(in: .whitespaces), returnPaths: returnPaths(in: entity.parts))
                    // The command is read in the reply's own paragraph only: further on, a copy of the original
                    // message may say "after data migration" in words of its own.
                    let paragraph = lines[..<number].reversed().prefix { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.reversed()
                    report.command = command(in: line) ?? command(in: (paragraph + [line]).joined(separator: "\n"))
                    return report
                }
            }
        }
        return nil
    }

    /// `550 5.1.1 text`, `550-5.1.1 text` or `550 text` anywhere in a line.
    /// Only ASCII digits make a code: `4００` (full-width) is text, not a
    /// reply (once a trap: it passed a Unicode digit test, then failed `Int`).
    static func replyLine(in line: String) -> (code: Int, enhanced: EnhancedStatusCode?)? {
        let bytes = Array(line.utf8.prefix(FeedbackReport.maximumLineLength))
        func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
        func isAlphanumeric(_ byte: UInt8) -> Bool { isDigit(byte) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte >= 0x80 }
        var index = 0
        while index + 3 <= bytes.count {
            let first = bytes[index]
            let before = index == 0 || !isAlphanumeric(bytes[index - 1])
            if before, first == 0x34 || first == 0x35, isDigit(bytes[index + 1]), isDigit(bytes[index + 2]),
               index + 3 == bytes.count || bytes[index + 3] == 0x20 || bytes[index + 3] == 0x2D {
                let code = Int(first - 0x30) * 100 + Int(bytes[index + 1] - 0x30) * 10 + Int(bytes[index + 2] - 0x30)
                let rest = bytes[min(bytes.count, index + 4)...]
                let word = rest.prefix { $0 != 0x20 }
                let enhanced = FeedbackReport.enhanced(String(decoding: word, as: UTF8.self))
                if enhanced.map({ $0.statusClass == code / 100 }) ?? true { return (code, enhanced) }
            }
            index += 1
        }
        return nil
    }

    /// Lines longer than this are read only this far (a reply line is at most 512 octets, RFC 5321 §4.5.3.1.5).
    static let maximumLineLength = 4096

    /// An enhanced status code in running text (`5.1.1;` or `(5.1.1)`).
    static func enhanced(_ text: String) -> EnhancedStatusCode? {
        EnhancedStatusCode(parsing: Substring(text.trimmingCharacters(in: CharacterSet(charactersIn: " ;,()"))))
    }

    /// Addresses in Return-Path fields of the original message included in a report.
    static func returnPaths(in parts: some Sequence<MIMEEntity>) -> [String] {
        var found: [String] = []
        for part in parts {
            let text = String(decoding: part.body, as: UTF8.self)
            for line in text.components(separatedBy: .newlines) where line.lowercased().hasPrefix("return-path:") {
                let value = line.dropFirst("return-path:".count).trimmingCharacters(in: CharacterSet(charactersIn: " \t\r<>"))
                if !value.isEmpty { found.append(value) }
            }
        }
        return found
    }
}

/// Just enough MIME to read reports: the header section (`HeaderSection`,
/// the one parser), the content type with its parameters, the parts of a
/// multipart body, base64/quoted-printable.
struct MIMEEntity {
    var headers: [String: String]
    var body: ArraySlice<UInt8>

    /// nil when the header section is malformed.
    init?(_ bytes: ArraySlice<UInt8>) {
        guard let section = try? HeaderSection(parsing: bytes, limits: .init(maximumSize: 256 * 1024, maximumFields: 1000)) else {
            return nil
        }
        headers = MIMEEntity.fields(section, in: bytes)
        body = bytes[min(section.bodyStart, bytes.endIndex)...]
    }

    /// Header fields by lower-cased name (the first of each), unfolded.
    static func fields(_ section: HeaderSection, in bytes: ArraySlice<UInt8>) -> [String: String] {
        var result: [String: String] = [:]
        for field in section.fields {
            let name = field.name.lowercased()
            if result[name] == nil { result[name] = field.unfoldedValue(in: bytes) }
        }
        return result
    }

    /// The blocks of fields of a message/delivery-status or feedback-report
    /// body (RFC 3464 §2.1, RFC 5965 §3), separated by empty lines; a
    /// malformed block is skipped. At most 1,000 blocks are read.
    static func fieldBlocks(_ body: ArraySlice<UInt8>) -> [[String: String]] {
        var blocks: [[String: String]] = []
        var start = body.startIndex
        while start < body.endIndex, blocks.count < 1000 {
            // Empty lines between blocks.
            while start + 1 < body.endIndex, body[start] == 0x0D, body[start + 1] == 0x0A { start += 2 }
            guard start < body.endIndex, let section = try? HeaderSection(parsing: body[start...]) else { break }
            if !section.fields.isEmpty { blocks.append(fields(section, in: body)) }
            guard section.bodyStart > start else { break }
            start = section.bodyStart
        }
        return blocks
    }

    struct ContentType {
        var type: String
        var parameters: [String: String]
    }

    var contentType: ContentType {
        let value = headers["content-type"] ?? "text/plain"
        var pieces = value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        let type = pieces.isEmpty ? "text/plain" : pieces.removeFirst().lowercased()
        var parameters: [String: String] = [:]
        for piece in pieces {
            let pair = piece.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            parameters[pair[0].trimmingCharacters(in: .whitespaces).lowercased()] = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: " \""))
        }
        return ContentType(type: type, parameters: parameters)
    }

    /// The parts of a multipart entity (none for other types, none past 100);
    /// a part whose header section is malformed is left out.
    var parts: [MIMEEntity] {
        guard contentType.type.hasPrefix("multipart/"), let boundary = contentType.parameters["boundary"], !boundary.isEmpty,
              boundary.utf8.count <= 200 else { return [] }
        let delimiter = Array("--\(boundary)".utf8)
        var starts: [Int] = []
        var index = body.startIndex
        while index + delimiter.count <= body.endIndex, starts.count <= 100 {
            let atLineStart = index == body.startIndex || body[index - 1] == 0x0A
            if atLineStart, body[index..<(index + delimiter.count)].elementsEqual(delimiter) {
                starts.append(index)
                index += delimiter.count
            } else {
                index += 1
            }
        }
        var parts: [MIMEEntity] = []
        for (number, start) in starts.enumerated() {
            var contentStart = start + delimiter.count
            if contentStart + 1 < body.endIndex, body[contentStart] == 0x2D, body[contentStart + 1] == 0x2D { break } // closing delimiter
            while contentStart < body.endIndex, body[contentStart] != 0x0A { contentStart += 1 }
            contentStart += 1
            var end = number + 1 < starts.count ? starts[number + 1] : body.endIndex
            // The line break before a delimiter belongs to it.
            if end > contentStart, body[end - 1] == 0x0A { end -= 1 }
            if end > contentStart, body[end - 1] == 0x0D { end -= 1 }
            guard contentStart <= end, let part = MIMEEntity(body[contentStart..<end]) else { continue }
            parts.append(part)
        }
        return parts
    }

    var decodedBody: [UInt8] {
        switch headers["content-transfer-encoding"]?.lowercased() {
        case "base64":
            return Data(base64Encoded: String(decoding: body, as: UTF8.self), options: .ignoreUnknownCharacters).map(Array.init) ?? Array(body)
        case "quoted-printable":
            var output: [UInt8] = []
            var index = body.startIndex
            while index < body.endIndex {
                if body[index] == UInt8(ascii: "="), index + 2 < body.endIndex {
                    if body[index + 1] == 0x0D || body[index + 1] == 0x0A {
                        index += body[index + 1] == 0x0D ? 3 : 2
                        continue
                    }
                    if let high = EncodedWords.hexValue(body[index + 1]), let low = EncodedWords.hexValue(body[index + 2]) {
                        output.append(high << 4 | low)
                        index += 3
                        continue
                    }
                }
                output.append(body[index])
                index += 1
            }
            return output
        default:
            return Array(body)
        }
    }
}
