/// Parsers for RFC 5321 §4.1.2 paths, named after the grammar rules.
///
/// `allowUTF8` admits RFC 6531 UTF8-non-ascii in atoms, quoted strings and
/// domain labels; the session decides whether the transaction may carry it.
public enum PathParser {
    // RFC 5321 §4.5.3.1.1-3.
    public static let maximumLocalPartLength = 64
    public static let maximumDomainLength = 255
    public static let maximumPathLength = 256

    /// Parses a whole `Reverse-path` (`<>` or `<mailbox>`); trailing bytes are an error.
    public static func parseReversePath(_ text: String, allowUTF8: Bool = true) throws(ParserError) -> ReversePath {
        var cursor = ByteCursor(Array(text.utf8))
        let path = try parseReversePath(&cursor, allowUTF8: allowUTF8)
        guard cursor.isAtEnd else { throw ParserError("unexpected bytes after path") }
        return path
    }

    /// Parses a whole `Forward-path`; trailing bytes are an error.
    public static func parseForwardPath(_ text: String, allowUTF8: Bool = true) throws(ParserError) -> ForwardPath {
        var cursor = ByteCursor(Array(text.utf8))
        let path = try parseForwardPath(&cursor, allowUTF8: allowUTF8)
        guard cursor.isAtEnd else { throw ParserError("unexpected bytes after path") }
        return path
    }

    /// Parses a bare `Mailbox` (no angle brackets).
    public static func parseMailbox(_ text: String, allowUTF8: Bool = true) throws(ParserError) -> Mailbox {
        var cursor = ByteCursor(Array(text.utf8))
        let mailbox = try parseMailbox(&cursor, allowUTF8: allowUTF8)
        guard cursor.isAtEnd else { throw ParserError("unexpected bytes after mailbox") }
        return mailbox
    }

    static func parseReversePath(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) -> ReversePath {
        let start = cursor.index
        if cursor.consume(UInt8(ascii: "<")), cursor.consume(UInt8(ascii: ">")) { return .null }
        cursor.index = start
        return .mailbox(try parsePath(&cursor, allowUTF8: allowUTF8))
    }

    static func parseForwardPath(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) -> ForwardPath {
        let start = cursor.index
        // RFC 5321 §4.1.1.3: "<Postmaster>" is accepted without a domain.
        if cursor.consumeCaseInsensitive("<postmaster>") { return .postmaster }
        cursor.index = start
        return .mailbox(try parsePath(&cursor, allowUTF8: allowUTF8))
    }

    /// `Path = "<" [ A-d-l ":" ] Mailbox ">"`. A source route (A-d-l) is
    /// parsed and dropped: RFC 5321 §3.3 and Appendix C.
    static func parsePath(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) -> Mailbox {
        let start = cursor.index
        guard cursor.consume(UInt8(ascii: "<")) else { throw ParserError("path must start with <") }
        if cursor.peek == UInt8(ascii: "@") {
            try parseAtDomainList(&cursor, allowUTF8: allowUTF8)
            guard cursor.consume(UInt8(ascii: ":")) else { throw ParserError("source route must end with :") }
        }
        let mailbox = try parseMailbox(&cursor, allowUTF8: allowUTF8)
        guard cursor.consume(UInt8(ascii: ">")) else { throw ParserError("path must end with >") }
        if cursor.index - start > maximumPathLength { throw ParserError("path longer than 256 octets") }
        return mailbox
    }

    /// `A-d-l = At-domain *( "," At-domain )`, `At-domain = "@" Domain`.
    static func parseAtDomainList(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) {
        repeat {
            guard cursor.consume(UInt8(ascii: "@")) else { throw ParserError("source route hop must start with @") }
            _ = try parseDomain(&cursor, allowUTF8: allowUTF8)
        } while cursor.consume(UInt8(ascii: ","))
    }

    /// `Mailbox = Local-part "@" ( Domain / address-literal )`.
    static func parseMailbox(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) -> Mailbox {
        let localPart = try parseLocalPart(&cursor, allowUTF8: allowUTF8)
        guard cursor.consume(UInt8(ascii: "@")) else { throw ParserError("mailbox needs @domain") }
        let domain: MailDomain
        if cursor.peek == UInt8(ascii: "[") {
            domain = .addressLiteral(try parseAddressLiteral(&cursor))
        } else {
            domain = .name(try parseDomain(&cursor, allowUTF8: allowUTF8))
        }
        return Mailbox(localPart: localPart, domain: domain)
    }

    /// `Local-part = Dot-string / Quoted-string`.
    static func parseLocalPart(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) -> String {
        let start = cursor.index
        if cursor.peek == UInt8(ascii: "\"") {
            try parseQuotedString(&cursor, allowUTF8: allowUTF8)
        } else {
            try parseDotString(&cursor, allowUTF8: allowUTF8)
        }
        let bytes = cursor.bytes[start..<cursor.index]
        if bytes.count > maximumLocalPartLength { throw ParserError("local part longer than 64 octets") }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `Dot-string = Atom *("." Atom)`.
    static func parseDotString(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) {
        repeat {
            try parseAtom(&cursor, allowUTF8: allowUTF8)
        } while cursor.consume(UInt8(ascii: "."))
    }

    /// `Atom = 1*atext` (RFC 6531: atext =/ UTF8-non-ascii).
    static func parseAtom(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) {
        let start = cursor.index
        while let byte = cursor.peek {
            if ASCII.isAtext(byte) {
                cursor.index += 1
            } else if byte >= 0x80, allowUTF8, let length = utf8NonASCIILength(cursor.bytes, at: cursor.index) {
                cursor.index += length
            } else {
                break
            }
        }
        if cursor.index == start { throw ParserError("empty atom") }
    }

    /// `Quoted-string = DQUOTE *QcontentSMTP DQUOTE`.
    static func parseQuotedString(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) {
        guard cursor.consume(UInt8(ascii: "\"")) else { throw ParserError("quoted string must start with \"") }
        while true {
            guard let byte = cursor.peek else { throw ParserError("unterminated quoted string") }
            if byte == UInt8(ascii: "\"") {
                cursor.index += 1
                return
            } else if byte == UInt8(ascii: "\\") {
                // quoted-pairSMTP = %d92 %d32-126
                cursor.index += 1
                guard let escaped = cursor.take(), escaped >= 32, escaped <= 126 else {
                    throw ParserError("bad quoted pair")
                }
            } else if ASCII.isQtextSMTP(byte) {
                cursor.index += 1
            } else if byte >= 0x80, allowUTF8, let length = utf8NonASCIILength(cursor.bytes, at: cursor.index) {
                cursor.index += length
            } else {
                throw ParserError("invalid character in quoted string")
            }
        }
    }

    /// `Domain = sub-domain *("." sub-domain)`,
    /// `sub-domain = Let-dig [Ldh-str]` (RFC 6531: or U-label).
    static func parseDomain(_ cursor: inout ByteCursor, allowUTF8: Bool) throws(ParserError) -> String {
        let start = cursor.index
        repeat {
            let labelStart = cursor.index
            var lastWasHyphen = false
            while let byte = cursor.peek {
                if ASCII.isLetDig(byte) {
                    lastWasHyphen = false
                    cursor.index += 1
                } else if byte == UInt8(ascii: "-"), cursor.index != labelStart {
                    lastWasHyphen = true
                    cursor.index += 1
                } else if byte >= 0x80, allowUTF8, let length = utf8NonASCIILength(cursor.bytes, at: cursor.index) {
                    lastWasHyphen = false
                    cursor.index += length
                } else {
                    break
                }
            }
            if cursor.index == labelStart { throw ParserError("empty domain label") }
            if lastWasHyphen { throw ParserError("domain label ends with hyphen") }
            if cursor.index - labelStart > 63 { throw ParserError("domain label longer than 63 octets") }
        } while cursor.consume(UInt8(ascii: "."))
        if cursor.index - start > maximumDomainLength { throw ParserError("domain longer than 255 octets") }
        return String(decoding: cursor.bytes[start..<cursor.index], as: UTF8.self)
    }

    /// `address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
    /// General-address-literal ) "]"` (RFC 5321 §4.1.3).
    static func parseAddressLiteral(_ cursor: inout ByteCursor) throws(ParserError) -> String {
        guard cursor.consume(UInt8(ascii: "[")) else { throw ParserError("address literal must start with [") }
        let body = cursor.take(while: { $0 != UInt8(ascii: "]") && $0 > 32 && $0 < 127 })
        guard cursor.consume(UInt8(ascii: "]")) else { throw ParserError("address literal must end with ]") }
        let text = String(decoding: body, as: UTF8.self)
        if IPAddressText.isIPv4(text[...]) { return text }
        if text.count > 5, text.prefix(5).lowercased() == "ipv6:", IPAddressText.isIPv6(text.dropFirst(5)) {
            return text
        }
        // General-address-literal = Standardized-tag ":" 1*dcontent
        if let colon = text.firstIndex(of: ":"), colon != text.startIndex,
           text[..<colon].utf8.allSatisfy({ ASCII.isLetDig($0) || $0 == UInt8(ascii: "-") }),
           text[text.index(after: colon)...].utf8.allSatisfy({ $0 >= 33 && $0 <= 126 && $0 != 91 && $0 != 92 && $0 != 93 }),
           text.index(after: colon) != text.endIndex,
           text[..<colon].lowercased() != "ipv6" {
            return text
        }
        throw ParserError("invalid address literal")
    }
}

/// Textual IP address checks for address literals.
public enum IPAddressText {
    /// Dotted quad with each part 0-255 and no leading zeros beyond one digit.
    public static func isIPv4(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCIIDigit), let value = Int(part) else { return false }
            return value <= 255
        }
    }

    /// RFC 4291 §2.2 text forms: eight groups, `::` compression, IPv4 tail.
    public static func isIPv6(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.count <= 45 else { return false }
        let bytes = Array(text.utf8)
        var doubleColons = 0
        for index in 1..<bytes.count where bytes[index] == UInt8(ascii: ":") && bytes[index - 1] == UInt8(ascii: ":") {
            doubleColons += 1
        }
        if doubleColons > 1 || text.contains(":::") { return false }
        let compressed = doubleColons == 1
        var groups = text.split(separator: ":", omittingEmptySubsequences: false)
        var expected = 8
        if let last = groups.last, last.contains(".") {
            guard isIPv4(last) else { return false }
            groups.removeLast()
            expected = 6
        }
        let nonEmpty = groups.filter { !$0.isEmpty }
        guard nonEmpty.allSatisfy({ (group: Substring) in group.count <= 4 && group.allSatisfy { $0.isHexDigit } }) else {
            return false
        }
        if compressed { return nonEmpty.count < expected }
        return nonEmpty.count == expected && groups.count == expected
    }
}
