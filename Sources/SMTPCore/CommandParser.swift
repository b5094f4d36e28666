/// Parses one command line (without its CRLF) into a `Command`.
///
/// Framing — finding the line, its length limit, bare CR/LF — is
/// `CommandLineReader`'s job; this type only knows the grammar.
public enum CommandParser {
    public static func parseCommand(_ line: [UInt8]) throws(ParserError) -> Command {
        var cursor = ByteCursor(line)
        let verb = cursor.take(while: ASCII.isAlpha)
        let verbText = String(decoding: verb, as: UTF8.self).uppercased()
        let hasArgument = cursor.peek == UInt8(ascii: " ")
        if !cursor.isAtEnd && !hasArgument {
            // "MAIL FROM:" is the only verb followed by something other than SP.
            throw ParserError("unrecognized command", kind: .unrecognizedCommand)
        }
        let argument = hasArgument ? Array(line[(cursor.index + 1)...]) : []

        switch verbText {
        case "EHLO": return .ehlo(try parseHelloArgument(argument))
        case "HELO": return .helo(try parseHelloArgument(argument))
        case "MAIL": return try parseMail(argument, hasArgument: hasArgument)
        case "RCPT": return try parseRcpt(argument, hasArgument: hasArgument)
        case "DATA": try requireNoArgument(hasArgument); return .data
        case "RSET": try requireNoArgument(hasArgument); return .rset
        case "QUIT": try requireNoArgument(hasArgument); return .quit
        case "STARTTLS": try requireNoArgument(hasArgument); return .startTLS
        case "NOOP": return .noop(hasArgument ? try text(argument) : nil)
        case "HELP": return .help(hasArgument ? try text(argument) : nil)
        case "VRFY":
            guard hasArgument, !argument.isEmpty else { throw ParserError("VRFY needs an argument") }
            return .vrfy(try text(argument))
        case "EXPN":
            guard hasArgument, !argument.isEmpty else { throw ParserError("EXPN needs an argument") }
            return .expn(try text(argument))
        case "AUTH": return try parseAuth(argument, hasArgument: hasArgument)
        case "BDAT": return .bdat(try text(argument))
        default: throw ParserError("unrecognized command", kind: .unrecognizedCommand)
        }
    }

    static func requireNoArgument(_ hasArgument: Bool) throws(ParserError) {
        if hasArgument { throw ParserError("command takes no argument") }
    }

    /// Printable text (ASCII or valid UTF-8), for arguments we only echo or ignore.
    static func text(_ bytes: [UInt8]) throws(ParserError) -> String {
        guard let string = String(validating: bytes, as: UTF8.self),
              !bytes.contains(where: { $0 < 32 || $0 == 127 }) else {
            throw ParserError("argument is not printable text")
        }
        return string
    }

    /// `"EHLO" SP ( Domain / address-literal )`. Real clients send odd names
    /// (underscores, bare hostnames); accept one printable token, as Postfix does,
    /// and ignore trailing words.
    static func parseHelloArgument(_ bytes: [UInt8]) throws(ParserError) -> String {
        let token = bytes.split(separator: UInt8(ascii: " "), maxSplits: 1, omittingEmptySubsequences: true).first ?? []
        guard !token.isEmpty else { throw ParserError("HELO/EHLO needs a domain") }
        guard token.allSatisfy({ $0 > 32 && $0 < 127 }), token.count <= PathParser.maximumDomainLength + 2 else {
            throw ParserError("invalid HELO/EHLO domain")
        }
        return String(decoding: token, as: UTF8.self)
    }

    /// `"MAIL FROM:" Reverse-path [SP Mail-parameters]`.
    static func parseMail(_ bytes: [UInt8], hasArgument: Bool) throws(ParserError) -> Command {
        var cursor = ByteCursor(bytes)
        guard hasArgument, cursor.consumeCaseInsensitive("FROM:") else { throw ParserError("expected MAIL FROM:") }
        _ = cursor.consume(UInt8(ascii: " ")) // tolerated: "MAIL FROM: <a@b>"
        let path = try PathParser.parseReversePath(&cursor, allowUTF8: true)
        let parameters = try MailParameters(try parseParameters(&cursor))
        return .mail(path, parameters)
    }

    /// `"RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path ) [SP Rcpt-parameters]`.
    static func parseRcpt(_ bytes: [UInt8], hasArgument: Bool) throws(ParserError) -> Command {
        var cursor = ByteCursor(bytes)
        guard hasArgument, cursor.consumeCaseInsensitive("TO:") else { throw ParserError("expected RCPT TO:") }
        _ = cursor.consume(UInt8(ascii: " "))
        let path = try PathParser.parseForwardPath(&cursor, allowUTF8: true)
        return .rcpt(path, try parseParameters(&cursor))
    }

    /// `Mail-parameters = esmtp-param *(SP esmtp-param)`, preceded by SP.
    static func parseParameters(_ cursor: inout ByteCursor) throws(ParserError) -> [ESMTPParameter] {
        var parameters: [ESMTPParameter] = []
        while !cursor.isAtEnd {
            guard cursor.consume(UInt8(ascii: " ")) else { throw ParserError("expected SP before parameter") }
            if cursor.isAtEnd { break } // a trailing space is common and harmless
            // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
            guard let first = cursor.peek, ASCII.isLetDig(first) else { throw ParserError("bad parameter keyword") }
            let keyword = cursor.take(while: { ASCII.isLetDig($0) || $0 == UInt8(ascii: "-") })
            var value: String?
            if cursor.consume(UInt8(ascii: "=")) {
                // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under RFC 6531
                let valueBytes = cursor.take(while: { ($0 >= 33 && $0 <= 126 && $0 != 61) || $0 >= 0x80 })
                guard !valueBytes.isEmpty, let decoded = String(validating: valueBytes, as: UTF8.self) else {
                    throw ParserError("bad parameter value")
                }
                value = decoded
            }
            parameters.append(ESMTPParameter(String(decoding: keyword, as: UTF8.self), value))
        }
        return parameters
    }

    /// `"AUTH" SP sasl-mech [SP initial-response]` (RFC 4954 §4).
    static func parseAuth(_ bytes: [UInt8], hasArgument: Bool) throws(ParserError) -> Command {
        guard hasArgument else { throw ParserError("AUTH needs a mechanism") }
        let parts = bytes.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let mechanism = parts.first, !mechanism.isEmpty, mechanism.count <= 20,
              mechanism.allSatisfy({ ASCII.isLetDig($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else {
            throw ParserError("bad SASL mechanism")
        }
        var initialResponse: String?
        if parts.count == 2 {
            let response = parts[1]
            guard !response.isEmpty, response.allSatisfy(isBase64OrEquals) else { throw ParserError("bad initial response") }
            initialResponse = String(decoding: response, as: UTF8.self)
        }
        return .auth(mechanism: String(decoding: mechanism, as: UTF8.self).uppercased(), initialResponse: initialResponse)
    }

    static func isBase64OrEquals(_ byte: UInt8) -> Bool {
        ASCII.isLetDig(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "=")
    }
}
