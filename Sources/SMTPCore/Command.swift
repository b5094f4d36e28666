import NIOCore

/// One SMTP command (RFC 5321 §4.1.1, RFC 3207 STARTTLS, RFC 4954 AUTH).
public enum Command: Hashable, Sendable {
    case ehlo(String)
    case helo(String)
    case mail(ReversePath, MailParameters)
    case rcpt(ForwardPath, [ESMTPParameter])
    case data
    case rset
    case vrfy(String)
    case expn(String)
    case help(String?)
    case noop(String?)
    case quit
    case startTLS
    /// `AUTH mechanism [initial-response]`; the response is base64 text, `=` for empty.
    case auth(mechanism: String, initialResponse: String?)
    /// RFC 3030 BDAT; recognised so that it can be refused cleanly.
    case bdat(String)

    /// The command as a client writes it, CRLF included.
    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .ehlo(let domain): buffer.writeString("EHLO \(domain)")
        case .helo(let domain): buffer.writeString("HELO \(domain)")
        case .mail(let path, let parameters):
            buffer.writeString("MAIL FROM:\(path)")
            for parameter in parameters.all { buffer.writeString(" \(parameter)") }
        case .rcpt(let path, let parameters):
            buffer.writeString("RCPT TO:\(path)")
            for parameter in parameters { buffer.writeString(" \(parameter)") }
        case .data: buffer.writeString("DATA")
        case .rset: buffer.writeString("RSET")
        case .vrfy(let argument): buffer.writeString("VRFY \(argument)")
        case .expn(let argument): buffer.writeString("EXPN \(argument)")
        case .help(let argument): buffer.writeString(argument.map { "HELP \($0)" } ?? "HELP")
        case .noop(let argument): buffer.writeString(argument.map { "NOOP \($0)" } ?? "NOOP")
        case .quit: buffer.writeString("QUIT")
        case .startTLS: buffer.writeString("STARTTLS")
        case .auth(let mechanism, let initialResponse):
            buffer.writeString("AUTH \(mechanism)")
            if let initialResponse { buffer.writeString(" \(initialResponse)") }
        case .bdat(let arguments): buffer.writeString("BDAT \(arguments)")
        }
        buffer.writeStaticString("\r\n")
    }

    public var encoded: ByteBuffer {
        var buffer = ByteBuffer()
        write(to: &buffer)
        return buffer
    }

    /// The verb, for logs and metrics.
    public var verb: String {
        switch self {
        case .ehlo: return "EHLO"
        case .helo: return "HELO"
        case .mail: return "MAIL"
        case .rcpt: return "RCPT"
        case .data: return "DATA"
        case .rset: return "RSET"
        case .vrfy: return "VRFY"
        case .expn: return "EXPN"
        case .help: return "HELP"
        case .noop: return "NOOP"
        case .quit: return "QUIT"
        case .startTLS: return "STARTTLS"
        case .auth: return "AUTH"
        case .bdat: return "BDAT"
        }
    }
}

/// `esmtp-param = esmtp-keyword ["=" esmtp-value]` (RFC 5321 §4.1.2).
public struct ESMTPParameter: Hashable, Sendable, CustomStringConvertible {
    /// Upper-cased keyword.
    public var keyword: String
    public var value: String?

    public init(_ keyword: String, _ value: String? = nil) {
        self.keyword = keyword.uppercased()
        self.value = value
    }

    public var description: String { value.map { "\(keyword)=\($0)" } ?? keyword }
}

/// `BODY=` values (RFC 6152).
public enum BodyType: String, Hashable, Sendable {
    case sevenBit = "7BIT"
    case eightBitMIME = "8BITMIME"
}

/// The MAIL FROM parameters this server understands, validated.
public struct MailParameters: Hashable, Sendable {
    /// RFC 1870 declared size.
    public var size: Int?
    /// RFC 6152 body type.
    public var body: BodyType?
    /// RFC 6531: the transaction may carry UTF-8 addresses and headers.
    public var smtpUTF8: Bool
    /// Everything else, in order, for the session to accept or refuse.
    public var other: [ESMTPParameter]

    public init(size: Int? = nil, body: BodyType? = nil, smtpUTF8: Bool = false, other: [ESMTPParameter] = []) {
        self.size = size
        self.body = body
        self.smtpUTF8 = smtpUTF8
        self.other = other
    }

    /// Validates the known keywords' values; unknown keywords are kept in `other`.
    public init(_ parameters: [ESMTPParameter]) throws(ParserError) {
        self.init()
        var seen = Set<String>()
        for parameter in parameters {
            guard seen.insert(parameter.keyword).inserted else { throw ParserError("duplicate parameter \(parameter.keyword)") }
            switch parameter.keyword {
            case "SIZE":
                // RFC 1870: size-value = 1*20DIGIT
                guard let value = parameter.value, (1...20).contains(value.count),
                      value.allSatisfy(\.isASCIIDigit) else { throw ParserError("SIZE needs a number") }
                size = Int(value) ?? Int.max
            case "BODY":
                guard let value = parameter.value?.uppercased(), let type = BodyType(rawValue: value) else {
                    throw ParserError("BODY must be 7BIT or 8BITMIME", kind: .unsupportedParameter)
                }
                body = type
            case "SMTPUTF8":
                guard parameter.value == nil else { throw ParserError("SMTPUTF8 takes no value") }
                smtpUTF8 = true
            default:
                other.append(parameter)
            }
        }
    }

    public var all: [ESMTPParameter] {
        var result: [ESMTPParameter] = []
        if let size { result.append(ESMTPParameter("SIZE", String(size))) }
        if let body { result.append(ESMTPParameter("BODY", body.rawValue)) }
        if smtpUTF8 { result.append(ESMTPParameter("SMTPUTF8")) }
        return result + other
    }
}
