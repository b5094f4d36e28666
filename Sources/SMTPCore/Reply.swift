import NIOCore

/// One SMTP reply (RFC 5321 §4.2): a three-digit code, an optional enhanced
/// status code and one or more lines of text.
///
/// Replies are values: the session decides which one to send; nothing throws
/// a reply.
public struct Reply: Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var enhancedCode: EnhancedStatusCode?
    /// Text lines without the code prefix or the enhanced code.
    public var lines: [String]

    public init(_ code: Int, _ enhancedCode: EnhancedStatusCode?, _ lines: [String]) {
        precondition((200...599).contains(code), "reply codes are 2yz..5yz")
        self.code = code
        self.enhancedCode = enhancedCode
        self.lines = lines.isEmpty ? [""] : lines
    }

    public init(_ code: Int, _ enhancedCode: EnhancedStatusCode?, _ text: String) {
        self.init(code, enhancedCode, [text])
    }

    /// All lines as one, for logs and classification.
    public var text: String { lines.joined(separator: " ") }

    public var isPositive: Bool { code < 400 }
    public var isTransientFailure: Bool { (400..<500).contains(code) }
    public var isPermanentFailure: Bool { code >= 500 }

    public var description: String {
        lines.map { line in
            if let enhancedCode { return "\(code) \(enhancedCode) \(line)" }
            return "\(code) \(line)"
        }.joined(separator: " / ")
    }

    /// Writes the reply with CRLF line endings; every line but the last uses
    /// the `code-` continuation form (RFC 5321 §4.2.1). The enhanced code is
    /// repeated on every line, as RFC 2034 §4 requires.
    public func write(to buffer: inout ByteBuffer, includeEnhancedCode: Bool = true) {
        for (index, line) in lines.enumerated() {
            buffer.writeString(String(code))
            buffer.writeInteger(index == lines.count - 1 ? UInt8(ascii: " ") : UInt8(ascii: "-"))
            if includeEnhancedCode, let enhancedCode {
                buffer.writeString(enhancedCode.description)
                if !line.isEmpty { buffer.writeInteger(UInt8(ascii: " ")) }
            }
            // Text never carries CR or LF: that would let a reply inject lines.
            buffer.writeString(Reply.sanitised(line))
            buffer.writeStaticString("\r\n")
        }
    }

    public func encoded(includeEnhancedCode: Bool = true) -> ByteBuffer {
        var buffer = ByteBuffer()
        write(to: &buffer, includeEnhancedCode: includeEnhancedCode)
        return buffer
    }

    static func sanitised(_ line: String) -> String {
        guard line.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else { return line }
        return String(line.map { $0 == "\r" || $0 == "\n" || $0 == "\r\n" ? " " : $0 })
    }
}

extension Reply {
    // Replies used by more than one part of the relay.
    public static let ok = Reply(250, EnhancedStatusCode(2, 0, 0), "OK")
    public static let syntaxError = Reply(500, EnhancedStatusCode(5, 5, 2), "Syntax error, command unrecognized")
    public static let lineTooLong = Reply(500, EnhancedStatusCode(5, 5, 2), "Line too long")
    public static let badSequence = Reply(503, EnhancedStatusCode(5, 5, 1), "Bad sequence of commands")
    public static let bareLineEnding = Reply(550, EnhancedStatusCode(5, 5, 2), "Bare CR or LF not allowed; lines must end with CRLF")
    public static let nulCharacter = Reply(550, EnhancedStatusCode(5, 5, 2), "NUL character not allowed")
    public static let serviceShuttingDown = Reply(421, EnhancedStatusCode(4, 3, 2), "Service shutting down, closing connection")
    public static let timeout = Reply(421, EnhancedStatusCode(4, 4, 2), "Timeout, closing connection")
}
