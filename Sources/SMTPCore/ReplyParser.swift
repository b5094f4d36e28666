import NIOCore

/// Reads SMTP replies as a client receives them (RFC 5321 §4.2), possibly
/// multi-line. Used by the delivery client and by round-trip tests.
public struct ReplyParser: Sendable {
    /// Longest reply line accepted; RFC 5321 §4.5.3.1.5 says 512, real servers
    /// send longer ones, so allow some slack before calling it malformed.
    public var maximumLineLength = 2048
    /// Bounds memory against a server that never ends a multi-line reply.
    public var maximumLines = 256

    private var pendingCode: Int?
    private var pendingLines: [Substring] = []

    public init() {}

    public enum Result: Equatable, Sendable {
        case incomplete
        case reply(Reply)
    }

    /// Consumes bytes up to and including the next complete reply.
    public mutating func parse(_ buffer: inout ByteBuffer) throws(ParserError) -> Result {
        while true {
            guard let lfIndex = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
                if buffer.readableBytes > maximumLineLength { throw ParserError("reply line too long") }
                return .incomplete
            }
            let lineLength = lfIndex - buffer.readerIndex
            if lineLength > maximumLineLength { throw ParserError("reply line too long") }
            guard var line = buffer.readString(length: lineLength) else { return .incomplete }
            buffer.moveReaderIndex(forwardBy: 1)
            if line.hasSuffix("\r") { line.removeLast() }
            let (code, isLast, text) = try Self.parseReplyLine(line)
            if let pendingCode, pendingCode != code { throw ParserError("reply code changed inside a multi-line reply") }
            pendingCode = code
            pendingLines.append(text)
            if pendingLines.count > maximumLines { throw ParserError("too many reply lines") }
            if isLast {
                let reply = Self.makeReply(code: code, lines: pendingLines)
                pendingCode = nil
                pendingLines = []
                return .reply(reply)
            }
        }
    }

    /// Splits `code SP text` / `code - text` by bytes, not Characters: a
    /// combining mark after the third digit must not change what the code is.
    static func parseReplyLine(_ line: String) throws(ParserError) -> (Int, Bool, Substring) {
        let utf8 = line.utf8
        let head = Array(utf8.prefix(4))
        guard head.count >= 3, head[0...2].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              (0x32...0x35).contains(head[0]) else {
            throw ParserError("reply does not start with a code")
        }
        let code = Int(head[0] - 0x30) * 100 + Int(head[1] - 0x30) * 10 + Int(head[2] - 0x30)
        if head.count == 3 { return (code, true, "") }
        let textStart = utf8.index(utf8.startIndex, offsetBy: 4)
        let text = Substring(utf8[textStart...])
        switch head[3] {
        case UInt8(ascii: " "): return (code, true, text)
        case UInt8(ascii: "-"): return (code, false, text)
        default: throw ParserError("reply code not followed by space or hyphen")
        }
    }

    /// The enhanced code is taken from the first line when it matches the
    /// reply's class (RFC 2034 §4), and stripped from every line that has it.
    static func makeReply(code: Int, lines: [Substring]) -> Reply {
        var enhanced: EnhancedStatusCode?
        if let first = lines.first, let token = first.split(separator: " ", maxSplits: 1).first,
           let candidate = EnhancedStatusCode(parsing: token), candidate.statusClass == code / 100 {
            enhanced = candidate
        }
        let texts = lines.map { line -> String in
            guard let enhanced else { return String(line) }
            let prefix = enhanced.description
            if line == prefix { return "" }
            if line.hasPrefix(prefix + " ") { return String(line.dropFirst(prefix.count + 1)) }
            return String(line)
        }
        return Reply(code, enhanced, texts)
    }
}
