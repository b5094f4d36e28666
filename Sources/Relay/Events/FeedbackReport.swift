import Foundation
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
    /// Return-path addresses found in the report's copy of the original
    /// message (for reports not sent to the return path itself, e.g. ARF).
    public var returnPaths: [String]

    /// Reads a report; nil when the message is none of the known kinds.
    public static func parse(_ message: [UInt8]) -> FeedbackReport? {
        let entity = MIMEEntity(message)
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
        let text = String(decoding: status.body, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        let blocks = text.components(separatedBy: "\n\n").map(MIMEEntity.fields)
        let recipient = blocks.dropFirst().first { $0["action"]?.lowercased().hasPrefix("failed") == true }
            ?? blocks.dropFirst().first { $0["status"] != nil } ?? blocks.first ?? [:]
        let statusCode = recipient["status"].flatMap { enhanced($0.split(separator: " ").first.map(String.init) ?? "") }
        var diagnostic = recipient["diagnostic-code"] ?? ""
        if let semicolon = diagnostic.firstIndex(of: ";") { diagnostic = String(diagnostic[diagnostic.index(after: semicolon)...]) }
        diagnostic = diagnostic.trimmingCharacters(in: .whitespaces)
        let quoted = replyLine(in: diagnostic)
        return FeedbackReport(kind: .bounce, action: recipient["action"]?.lowercased(), replyCode: quoted?.code,
                              enhancedCode: statusCode ?? quoted?.enhanced, text: diagnostic.isEmpty ? (recipient["status"] ?? "") : diagnostic,
                              returnPaths: returnPaths(in: parts.dropFirst(2)))
    }

    static func arf(_ parts: [MIMEEntity]) -> FeedbackReport {
        let report = parts.first { $0.contentType.type == "message/feedback-report" }
        let fields = MIMEEntity.fields(String(decoding: report?.body ?? [], as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n"))
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
            for line in text.components(separatedBy: .newlines) {
                if let reply = replyLine(in: line) {
                    return FeedbackReport(kind: .bounce, action: "failed", replyCode: reply.code, enhancedCode: reply.enhanced,
                                          text: line.trimmingCharacters(in: .whitespaces), returnPaths: returnPaths(in: entity.parts))
                }
            }
        }
        return nil
    }

    /// `550 5.1.1 text`, `550-5.1.1 text` or `550 text` anywhere in a line.
    static func replyLine(in line: String) -> (code: Int, enhanced: EnhancedStatusCode?)? {
        let scalars = Array(line.unicodeScalars)
        var index = 0
        while index + 3 <= scalars.count {
            let digits = scalars[index..<(index + 3)]
            let before = index == 0 || !CharacterSet.alphanumerics.contains(scalars[index - 1])
            if before, digits.allSatisfy({ CharacterSet.decimalDigits.contains($0) }), let first = digits.first, first == "4" || first == "5",
               index + 3 == scalars.count || scalars[index + 3] == " " || scalars[index + 3] == "-" {
                let code = Int(String(String.UnicodeScalarView(digits)))!
                let rest = String(String.UnicodeScalarView(scalars[min(scalars.count, index + 4)...]))
                let enhanced: EnhancedStatusCode? = rest.split(separator: " ").first.flatMap { FeedbackReport.enhanced(String($0)) }
                if enhanced.map({ $0.statusClass == code / 100 }) ?? true { return (code, enhanced) }
            }
            index += 1
        }
        return nil
    }

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

/// Just enough MIME to read reports: header fields, the content type with
/// its parameters, the parts of a multipart body, base64/quoted-printable.
struct MIMEEntity {
    var headers: [String: String]
    var body: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) {
        var index = bytes.startIndex
        var headerEnd = bytes.endIndex
        var bodyStart = bytes.endIndex
        while index < bytes.endIndex {
            if bytes[index] == 0x0A {
                // A line that is empty (LF or CRLF) ends the header section.
                let next = index + 1
                if next < bytes.endIndex, bytes[next] == 0x0A { headerEnd = index; bodyStart = next + 1; break }
                if next + 1 < bytes.endIndex, bytes[next] == 0x0D, bytes[next + 1] == 0x0A { headerEnd = index; bodyStart = next + 2; break }
            }
            index += 1
        }
        if bytes.first == 0x0D || bytes.first == 0x0A { headerEnd = bytes.startIndex; bodyStart = bytes.startIndex + (bytes.first == 0x0D ? 2 : 1) }
        headers = MIMEEntity.fields(String(decoding: bytes[bytes.startIndex..<headerEnd], as: UTF8.self))
        body = bytes[min(bodyStart, bytes.endIndex)...]
    }

    init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    /// Header fields by lower-cased name (the first of each), unfolded.
    static func fields(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        var lastName: String?
        // CRLF is one Character in Swift: make line ends plain LF first (a lone CR may end the text).
        let text = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.first == " " || line.first == "\t", let name = lastName {
                result[name]? += " " + line.trimmingCharacters(in: .whitespaces)
            } else if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                lastName = result[name] == nil ? name : nil
                if result[name] == nil { result[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
            }
        }
        return result
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

    /// The parts of a multipart entity (none for other types).
    var parts: [MIMEEntity] {
        guard contentType.type.hasPrefix("multipart/"), let boundary = contentType.parameters["boundary"], !boundary.isEmpty else { return [] }
        let delimiter = Array("--\(boundary)".utf8)
        var starts: [Int] = []
        var index = body.startIndex
        while index + delimiter.count <= body.endIndex {
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
            guard contentStart <= end else { continue }
            parts.append(MIMEEntity(body[contentStart..<end]))
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
                    if let byte = UInt8(String(decoding: body[(index + 1)...(index + 2)], as: UTF8.self), radix: 16) {
                        output.append(byte)
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
