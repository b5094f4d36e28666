import Foundation

/// A mailbox (RFC 5322 §3.4): an optional display name and an addr-spec.
public struct Mailbox: Sendable, Equatable, CustomStringConvertible {
    /// The display name as a reader shows it: encoded words decoded, quotes removed.
    public var displayName: String?
    /// The local part as written (a quoted string keeps its quotes).
    public var localPart: String
    /// The domain as written: a dot-atom, or a domain literal in brackets.
    public var domain: String

    public init(displayName: String? = nil, localPart: String, domain: String) {
        self.displayName = displayName
        self.localPart = localPart
        self.domain = domain
    }

    /// `local@domain`.
    public var address: String { localPart + "@" + domain }
    public var description: String { address }
}

/// An address (RFC 5322 §3.4): a mailbox, or a named group of mailboxes.
public enum Address: Sendable, Equatable {
    case mailbox(Mailbox)
    case group(displayName: String, members: [Mailbox])
}

/// The value of an address field (From, Sender, Reply-To, To, Cc, Bcc,
/// Resent-*), parsed by the grammar of RFC 5322 §3.4 with its obsolete
/// forms (§4.4: null list elements, routes, CFWS around dots), UTF-8 in
/// atoms and quoted strings (RFC 6532), and encoded words in display names
/// and comments decoded (RFC 2047), because that is what a reader shows.
public struct AddressList: Sendable, Equatable {
    public var addresses: [Address]
    /// The text of every comment, decoded: `ceo@theirs (shop@mine)` shows both.
    public var comments: [String]

    /// Every mailbox, group members included, in order.
    public var mailboxes: [Mailbox] {
        addresses.flatMap { address -> [Mailbox] in
            switch address {
            case .mailbox(let mailbox): return [mailbox]
            case .group(_, let members): return members
            }
        }
    }

    /// Whether any address is a group (RFC 6854 allows one in From).
    public var containsGroup: Bool {
        addresses.contains { if case .group = $0 { return true } else { return false } }
    }

    /// Text a reader is shown besides the addresses: display names, group names, comments.
    public var displayedTexts: [String] {
        var texts = comments
        for address in addresses {
            switch address {
            case .mailbox(let mailbox):
                if let name = mailbox.displayName { texts.append(name) }
            case .group(let name, let members):
                texts.append(name)
                texts += members.compactMap(\.displayName)
            }
        }
        return texts
    }

    /// Why a value is not an address list.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    public init(addresses: [Address], comments: [String] = []) {
        self.addresses = addresses
        self.comments = comments
    }

    /// Parses an unfolded field value.
    public init(parsing value: String) throws(SyntaxError) {
        try self.init(parsing: Array(value.utf8))
    }

    /// Parses an unfolded field value (UTF-8 bytes).
    public init(parsing value: [UInt8]) throws(SyntaxError) {
        var tokenizer = AddressTokenizer(value)
        let tokens = try tokenizer.tokens()
        var parser = AddressGrammar(tokens: tokens)
        addresses = try parser.addressList()
        comments = tokenizer.comments
    }
}

// MARK: Lexical tokens (RFC 5322 §3.2)

struct AddressToken: Equatable {
    enum Kind: Equatable {
        case atom
        case quotedString
        case domainLiteral
        /// One of ( ) < > [ ] : ; @ \ , . " outside the forms above.
        case special(UInt8)
    }

    var kind: Kind
    /// The text: an atom as written, a quoted string unescaped (no quotes), a literal with its brackets.
    var text: String
    /// White space or a comment came before it (for joining phrase words).
    var spaced: Bool
}

struct AddressTokenizer {
    let bytes: [UInt8]
    var index = 0
    var comments: [String] = []
    static let maximumCommentDepth = 32

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// RFC 5322 §3.2.3 atext, plus any non-ASCII byte (RFC 6532 §3.2).
    static func isAtext(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "?"),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"),
             UInt8(ascii: "~"):
            return true
        default:
            return byte >= 0x80
        }
    }

    /// Controls other than HTAB, and DEL: never part of a header value.
    static func isControl(_ byte: UInt8) -> Bool { (byte < 0x20 && byte != 0x09) || byte == 0x7F }

    mutating func tokens() throws(AddressList.SyntaxError) -> [AddressToken] {
        var tokens: [AddressToken] = []
        var spaced = false
        while index < bytes.count {
            let byte = bytes[index]
            if AddressTokenizer.isControl(byte) { throw AddressList.SyntaxError("control character in an address field") }
            switch byte {
            case 0x20, 0x09, 0x0D, 0x0A:
                spaced = true
                index += 1
            case UInt8(ascii: "("):
                try comment()
                spaced = true
            case UInt8(ascii: "\""):
                tokens.append(AddressToken(kind: .quotedString, text: try quotedString(), spaced: spaced))
                spaced = false
            case UInt8(ascii: "["):
                tokens.append(AddressToken(kind: .domainLiteral, text: try domainLiteral(), spaced: spaced))
                spaced = false
            case UInt8(ascii: ")"), UInt8(ascii: "]"), UInt8(ascii: "\\"):
                throw AddressList.SyntaxError("unexpected \(Character(Unicode.Scalar(byte))) in an address field")
            case UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: ":"), UInt8(ascii: ";"), UInt8(ascii: "@"),
                 UInt8(ascii: ","), UInt8(ascii: "."):
                tokens.append(AddressToken(kind: .special(byte), text: String(Unicode.Scalar(byte)), spaced: spaced))
                spaced = false
                index += 1
            default:
                let start = index
                while index < bytes.count, AddressTokenizer.isAtext(bytes[index]) { index += 1 }
                tokens.append(AddressToken(kind: .atom, text: String(decoding: bytes[start..<index], as: UTF8.self), spaced: spaced))
                spaced = false
            }
        }
        return tokens
    }

    /// RFC 5322 §3.2.2: `(` ctext / quoted-pair / comment `)`, nested.
    mutating func comment() throws(AddressList.SyntaxError) {
        var depth = 0
        var text: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "("):
                depth += 1
                guard depth <= AddressTokenizer.maximumCommentDepth else { throw AddressList.SyntaxError("comments nested too deeply") }
                if depth > 1 { text.append(byte) }
            case UInt8(ascii: ")"):
                depth -= 1
                if depth == 0 {
                    comments.append(EncodedWords.decodeText(String(decoding: text, as: UTF8.self)))
                    return
                }
                text.append(byte)
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw AddressList.SyntaxError("unterminated comment") }
                text.append(bytes[index])
                index += 1
            default:
                if AddressTokenizer.isControl(byte) { throw AddressList.SyntaxError("control character in a comment") }
                text.append(byte)
            }
        }
        throw AddressList.SyntaxError("unterminated comment")
    }

    /// RFC 5322 §3.2.4: the content of a quoted string, quoted-pairs resolved.
    mutating func quotedString() throws(AddressList.SyntaxError) -> String {
        index += 1
        var text: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: text, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { break }
                text.append(bytes[index])
                index += 1
            case 0x0D, 0x0A:
                continue // folding inside the quotes
            default:
                if AddressTokenizer.isControl(byte) { throw AddressList.SyntaxError("control character in a quoted string") }
                text.append(byte)
            }
        }
        throw AddressList.SyntaxError("unterminated quoted string")
    }

    /// RFC 5322 §3.4.1: `[` dtext `]`, kept with its brackets.
    mutating func domainLiteral() throws(AddressList.SyntaxError) -> String {
        let start = index
        index += 1
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "]") { return String(decoding: bytes[start..<index], as: UTF8.self) }
            if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "\\") || AddressTokenizer.isControl(byte) {
                throw AddressList.SyntaxError("invalid character in a domain literal")
            }
        }
        throw AddressList.SyntaxError("unterminated domain literal")
    }
}

// MARK: Grammar (RFC 5322 §3.4, §4.4)

struct AddressGrammar {
    let tokens: [AddressToken]
    var position = 0

    init(tokens: [AddressToken]) { self.tokens = tokens }

    var peek: AddressToken? { position < tokens.count ? tokens[position] : nil }

    func isSpecial(_ token: AddressToken?, _ character: Unicode.Scalar) -> Bool {
        guard let token, case .special(let byte) = token.kind else { return false }
        return byte == UInt8(ascii: character)
    }

    mutating func expect(_ character: Unicode.Scalar, _ what: String) throws(AddressList.SyntaxError) {
        guard isSpecial(peek, character) else { throw AddressList.SyntaxError(what) }
        position += 1
    }

    /// address-list, with obs-addr-list's empty elements.
    mutating func addressList() throws(AddressList.SyntaxError) -> [Address] {
        var addresses: [Address] = []
        while true {
            while isSpecial(peek, ",") { position += 1 }
            guard peek != nil else { break }
            addresses.append(try address(inGroup: false))
            guard peek != nil else { break }
            try expect(",", "expected a comma between addresses")
        }
        return addresses
    }

    /// address = mailbox / group.
    mutating func address(inGroup: Bool) throws(AddressList.SyntaxError) -> Address {
        let phraseStart = position
        let words = phrase()
        if isSpecial(peek, ":") {
            guard !inGroup else { throw AddressList.SyntaxError("a group inside a group") }
            guard !words.isEmpty else { throw AddressList.SyntaxError("a group needs a name") }
            position += 1
            var members: [Mailbox] = []
            while true {
                while isSpecial(peek, ",") { position += 1 }
                if isSpecial(peek, ";") { position += 1; break }
                guard peek != nil else { throw AddressList.SyntaxError("a group must end with ;") }
                guard case .mailbox(let mailbox) = try address(inGroup: true) else {
                    throw AddressList.SyntaxError("a group inside a group")
                }
                members.append(mailbox)
                if isSpecial(peek, ";") { position += 1; break }
                try expect(",", "expected a comma between group members")
            }
            return .group(displayName: AddressGrammar.displayText(words), members: members)
        }
        if isSpecial(peek, "<") {
            position += 1
            try route()
            let (local, domain) = try addrSpec()
            try expect(">", "an address in angle brackets must end with >")
            return .mailbox(Mailbox(displayName: words.isEmpty ? nil : AddressGrammar.displayText(words), localPart: local,
                                    domain: domain))
        }
        if isSpecial(peek, "@") {
            // The words read were the local part of a bare addr-spec.
            position = phraseStart
            let (local, domain) = try addrSpec()
            return .mailbox(Mailbox(localPart: local, domain: domain))
        }
        if words.isEmpty { throw AddressList.SyntaxError("expected an address") }
        throw AddressList.SyntaxError("a display name without an address")
    }

    /// phrase / obs-phrase: words, and dots after the first word.
    mutating func phrase() -> [AddressToken] {
        var words: [AddressToken] = []
        while let token = peek {
            switch token.kind {
            case .atom, .quotedString: words.append(token)
            case .special(UInt8(ascii: ".")) where !words.isEmpty: words.append(token)
            default: return words
            }
            position += 1
        }
        return words
    }

    /// obs-route before an addr-spec in angle brackets: `@a,@b:`. Read and dropped.
    mutating func route() throws(AddressList.SyntaxError) {
        guard isSpecial(peek, "@") || isSpecial(peek, ",") else { return }
        while isSpecial(peek, "@") || isSpecial(peek, ",") {
            if isSpecial(peek, ",") { position += 1; continue }
            position += 1
            _ = try domain()
        }
        try expect(":", "a source route must end with :")
    }

    /// addr-spec = local-part "@" domain.
    mutating func addrSpec() throws(AddressList.SyntaxError) -> (String, String) {
        var local = ""
        var expectWord = true
        while let token = peek {
            if expectWord {
                switch token.kind {
                case .atom: local += token.text
                case .quotedString: local += AddressGrammar.quote(token.text)
                default: throw AddressList.SyntaxError("invalid local part")
                }
            } else {
                guard isSpecial(token, ".") else { break }
                local += "."
            }
            expectWord.toggle()
            position += 1
        }
        guard !expectWord, !local.isEmpty else { throw AddressList.SyntaxError("invalid local part") }
        try expect("@", "an address needs @domain")
        return (local, try domain())
    }

    /// domain = dot-atom / domain-literal / obs-domain.
    mutating func domain() throws(AddressList.SyntaxError) -> String {
        guard let first = peek else { throw AddressList.SyntaxError("missing domain") }
        if first.kind == .domainLiteral {
            position += 1
            return first.text
        }
        var domain = ""
        var expectAtom = true
        while let token = peek {
            if expectAtom {
                guard token.kind == .atom else { break }
                domain += token.text
            } else {
                guard isSpecial(token, ".") else { break }
                domain += "."
            }
            expectAtom.toggle()
            position += 1
        }
        guard !expectAtom, !domain.isEmpty else { throw AddressList.SyntaxError("invalid domain") }
        return domain
    }

    /// A local part in its written form: quoted only when it must be.
    static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// The words of a phrase as a reader shows them: encoded words decoded
    /// (the white space between two of them dropped, RFC 2047 §6.2), one
    /// space between words, a dot kept with its word.
    static func displayText(_ words: [AddressToken]) -> String {
        var text = ""
        var previousEncoded = false
        for word in words {
            if case .special = word.kind {
                text += word.text
                previousEncoded = false
                continue
            }
            let decoded = EncodedWords.decodeWord(word.text)
            if !text.isEmpty && word.spaced && !(previousEncoded && decoded != nil) { text += " " }
            text += decoded ?? (word.kind == .quotedString ? EncodedWords.decodeText(word.text) : word.text)
            previousEncoded = decoded != nil
        }
        return text
    }
}
