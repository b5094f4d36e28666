import Foundation

/// A character set a message can be written in.
public enum Charset: String, Sendable, Codable, Equatable {
    case utf8 = "UTF-8"
    /// ISO-2022-JP (RFC 1468): JIS X 0208 in 7 bits, still expected by Japanese mobile mail.
    case iso2022JP = "ISO-2022-JP"

    public init?(name: String) {
        switch name.lowercased() {
        case "utf-8", "utf8": self = .utf8
        case "iso-2022-jp", "iso2022jp", "jis": self = .iso2022JP
        default: return nil
        }
    }

    /// `text` in this charset.
    public func encode(_ text: String) throws(MIMEError) -> [UInt8] {
        switch self {
        case .utf8: return Array(text.utf8)
        case .iso2022JP: return try ISO2022JP.encode(text)
        }
    }
}

/// RFC 2047 encoded words for header text that is not plain ASCII.
public enum EncodedWord {
    /// `text` as it may stand in an unstructured header (Subject, a display
    /// name): unchanged when printable ASCII that can be folded into lines of
    /// at most 998 octets (no run without white space longer than
    /// `maximumWord`), else "B" encoded words of at most 75 characters each,
    /// separated by folding white space.
    public static func encode(_ text: String, charset: Charset) throws(MIMEError) -> String {
        if EncodedWord.isPlain(text) { return text }
        let prefix = "=?\(charset.rawValue)?B?"
        // 75 - "=?" - charset - "?B?" - "?=", in base64 characters, then in bytes.
        let budget = ((75 - prefix.count - 2) / 4) * 3
        var words: [String] = []
        if charset == .utf8 {
            // UTF-8 lengths add up, so each character is encoded once (ISO-2022-JP's escapes do not).
            var chunk: [UInt8] = []
            chunk.reserveCapacity(budget)
            for character in text {
                let bytes = character.utf8
                if chunk.count + bytes.count > budget, !chunk.isEmpty {
                    words.append(prefix + Data(chunk).base64EncodedString() + "?=")
                    chunk.removeAll(keepingCapacity: true)
                }
                chunk.append(contentsOf: bytes)
            }
            if !chunk.isEmpty { words.append(prefix + Data(chunk).base64EncodedString() + "?=") }
            return words.joined(separator: "\r\n ")
        }
        var chunk = ""
        // Whole characters per word (RFC 2047 §5: a character is never split),
        // and for ISO-2022-JP each word returns to ASCII on its own.
        for character in text {
            let candidate = chunk + String(character)
            if try charset.encode(candidate).count > budget, !chunk.isEmpty {
                words.append(prefix + Data(try charset.encode(chunk)).base64EncodedString() + "?=")
                chunk = String(character)
            } else {
                chunk = candidate
            }
        }
        if !chunk.isEmpty { words.append(prefix + Data(try charset.encode(chunk)).base64EncodedString() + "?=") }
        return words.joined(separator: "\r\n ")
    }

    /// Printable ASCII with no run between spaces longer than `maximumWord`: written as it is.
    /// One pass over the bytes (most values, List-Unsubscribe's URLs among them, are plain).
    static func isPlain(_ text: String) -> Bool {
        var run = 0
        for byte in text.utf8 {
            guard byte >= 0x20 && byte < 0x7F else { return false }
            if byte == 0x20 {
                run = 0
            } else {
                run += 1
                if run > maximumWord { return false }
            }
        }
        return true
    }

    /// The longest run of ASCII left as it is: with a field name (at most 76)
    /// and its colon, a line still fits in 998 octets (RFC 5322 §2.1.1).
    static let maximumWord = 900
}

/// An address with an optional display name, as in From, To, Cc, Reply-To.
public struct NameAddress: Sendable, Equatable, Codable {
    public var name: String?
    public var address: String

    public init(name: String? = nil, address: String) {
        self.name = name
        self.address = address
    }

    /// Reads `addr@example.com`, `<addr@example.com>` or `Name <addr@example.com>`
    /// (the name optionally in double quotes).
    public init(parsing text: String) throws(MIMEError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        try MIMEError.checkNoLineBreak(trimmed, field: "address")
        if trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<") {
            var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
                name = String(name.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
            }
            self.name = name.isEmpty ? nil : name
            address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
        } else {
            name = nil
            address = trimmed
        }
        try NameAddress.validate(address)
    }

    /// A bare addr-spec: one @, no spaces, no brackets or commas, sane lengths.
    static func validate(_ address: String) throws(MIMEError) {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64, parts[1].utf8.count <= 255,
              parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
              address.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F && !"<>(),;:\\\"[]".unicodeScalars.contains($0) })
        else { throw .invalidAddress(address) }
    }

    /// The header form: the name as an encoded word or quoted string.
    func render(charset: Charset) throws(MIMEError) -> String {
        guard let name, !name.isEmpty else { return address }
        try MIMEError.checkNoLineBreak(name, field: "name")
        if name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) {
            let atext = name.allSatisfy { $0.isLetter || $0.isNumber || " !#$%&'*+-/=?^_`{|}~".contains($0) }
            let quoted = atext ? name : "\"" + name.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"") + "\""
            return "\(quoted) <\(address)>"
        }
        return "\(try EncodedWord.encode(name, charset: charset)) <\(address)>"
    }
}

/// Why a message could not be built. Every case is the caller's input.
public enum MIMEError: Error, Equatable, CustomStringConvertible {
    /// CR or LF in a field: header injection, refused rather than passed on.
    case lineBreakInField(String)
    case invalidAddress(String)
    case invalidHeaderName(String)
    /// A header the builder writes itself (From, To, Content-Type…).
    case reservedHeader(String)
    case notRepresentable(charset: String, text: String)
    case noBody
    case noRecipients

    public var description: String {
        switch self {
        case .lineBreakInField(let field): return "\(field) contains a line break (CR or LF)"
        case .invalidAddress(let address): return "invalid email address: \(address)"
        case .invalidHeaderName(let name): return "invalid header name: \(name)"
        case .reservedHeader(let name): return "header \(name) cannot be set directly"
        case .notRepresentable(let charset, let text): return "text cannot be written in \(charset): \(text.prefix(40))"
        case .noBody: return "a message needs a text or HTML part, or an attachment"
        case .noRecipients: return "a message needs at least one recipient"
        }
    }

    static func checkNoLineBreak(_ value: String, field: String) throws(MIMEError) {
        if value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\u{0}" }) {
            throw .lineBreakInField(field)
        }
    }
}
