import NIOCore

/// Reads the text that follows DATA (RFC 5321 §4.1.1.4, §4.5.2) until the
/// end-of-data line, removing dot-stuffing.
///
/// Only CRLF "." CRLF ends the data. Every other line-ending variant used in
/// SMTP smuggling (`\n.\n`, `\r.\r`, `\n.\r\n`, …) contains a bare CR or LF,
/// which is recorded as a violation while reading continues to the real end,
/// so bytes after a fake end are never run as commands. Once a violation is
/// recorded, or the size limit is passed, content is no longer kept.
public struct DataReader: Sendable {
    /// Content octets after unstuffing beyond which the message is refused.
    public var maximumMessageSize: Int
    /// Maximum text line length including CRLF (RFC 5321 §4.5.3.1.6: 1000).
    public var maximumLineLength: Int

    public enum Violation: Hashable, Sendable {
        case bareLineEnding
        case nulCharacter
        case lineTooLong
        case messageTooLarge
    }

    public enum Result: Equatable, Sendable {
        case incomplete
        /// End of data seen. On success `content` holds the unstuffed message
        /// with CRLF line endings; on a violation the content was discarded.
        case complete(Violation?)
    }

    private enum State: Sendable {
        case lineStart
        case inLine
        case sawCR
        case dotAtLineStart
        case dotCR
    }

    private var state: State = .lineStart
    private var lineLength = 0
    public private(set) var violation: Violation?
    /// The message received so far.
    public private(set) var content: [UInt8] = []
    /// Octets of content seen, including any not kept.
    public private(set) var contentLength = 0

    public init(maximumMessageSize: Int, maximumLineLength: Int = 1000) {
        self.maximumMessageSize = maximumMessageSize
        self.maximumLineLength = maximumLineLength
        content.reserveCapacity(min(maximumMessageSize, 16 * 1024))
    }

    /// Takes the content out, leaving the reader empty.
    public mutating func takeContent() -> [UInt8] {
        defer { content = [] }
        return content
    }

    /// Consumes bytes up to and including the end-of-data line; bytes after it
    /// stay in `buffer` (they are pipelined commands).
    public mutating func read(_ buffer: inout ByteBuffer) -> Result {
        var consumed = 0
        var finished = false
        buffer.withUnsafeReadableBytes { bytes in
            let count = bytes.count
            while consumed < count {
                if state == .inLine && violation == nil {
                    // Fast path: copy the run of ordinary text up to the next
                    // CR, LF or NUL in one go; the state machine handles those.
                    var end = consumed
                    while end < count {
                        let byte = bytes[end]
                        if byte == 0x0D || byte == 0x0A || byte == 0 { break }
                        end += 1
                    }
                    let run = end - consumed
                    if run > 0 {
                        if lineLength + run > maximumLineLength - 2 || contentLength + run > maximumMessageSize {
                            // Let the byte-wise path record the exact violation.
                            appendTextByte(bytes[consumed])
                            consumed += 1
                            continue
                        }
                        content.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[consumed..<end]))
                        lineLength += run
                        contentLength += run
                        consumed = end
                        continue
                    }
                }
                let byte = bytes[consumed]
                consumed += 1
                if step(byte) {
                    finished = true
                    break
                }
            }
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        return finished ? .complete(violation) : .incomplete
    }

    private mutating func record(_ newViolation: Violation) {
        if violation == nil { violation = newViolation }
        content = []
    }

    private mutating func append(_ byte: UInt8) {
        contentLength += 1
        guard violation == nil else { return }
        if contentLength > maximumMessageSize {
            record(.messageTooLarge)
            return
        }
        content.append(byte)
    }

    private mutating func appendTextByte(_ byte: UInt8) {
        if byte == 0 { record(.nulCharacter) }
        lineLength += 1
        // 1000 octets including CRLF leaves 998 for text.
        if lineLength > maximumLineLength - 2 { record(.lineTooLong) }
        append(byte)
    }

    /// Returns true at the end of data.
    private mutating func step(_ byte: UInt8) -> Bool {
        switch state {
        case .lineStart:
            lineLength = 0
            if byte == UInt8(ascii: ".") {
                state = .dotAtLineStart
                return false
            }
            state = .inLine
            return step(byte)
        case .dotAtLineStart:
            if byte == UInt8(ascii: "\r") {
                state = .dotCR
                return false
            }
            // RFC 5321 §4.5.2: a leading dot is removed; the rest is text.
            // §4.5.3.1.6: the duplicated dot does not count towards the line length.
            lineLength = 0
            state = .inLine
            return step(byte)
        case .dotCR:
            if byte == UInt8(ascii: "\n") { return true }
            // ".\r" followed by something else: a bare CR.
            record(.bareLineEnding)
            state = .inLine
            return step(byte)
        case .inLine:
            switch byte {
            case UInt8(ascii: "\r"):
                state = .sawCR
            case UInt8(ascii: "\n"):
                // A bare LF does not start a line: "\n.\r\n" must not end
                // the data, or the bytes after it would run as commands.
                record(.bareLineEnding)
            default:
                appendTextByte(byte)
            }
            return false
        case .sawCR:
            if byte == UInt8(ascii: "\n") {
                append(UInt8(ascii: "\r"))
                append(UInt8(ascii: "\n"))
                state = .lineStart
                return false
            }
            record(.bareLineEnding)
            state = .inLine
            return step(byte)
        }
    }
}

/// Dot-stuffing for the sending side (RFC 5321 §4.5.2).
public enum DotStuffing {
    /// Returns the message ready for the DATA phase: every line starting with
    /// "." gets another ".", every line ends with CRLF (a bare CR or LF
    /// becomes CRLF, so nothing ambiguous reaches the wire), and the
    /// terminating CRLF "." CRLF is appended.
    public static func stuff(_ message: [UInt8]) -> ByteBuffer {
        var output = ByteBuffer()
        output.reserveCapacity(message.count + message.count / 32 + 5)
        message.withUnsafeBufferPointer { bytes in
            // Ordinary bytes are copied in runs; only line ends and leading dots are looked at.
            var runStart = 0
            var index = 0
            var atLineStart = true
            func copyRun(upTo end: Int) {
                if end > runStart { output.writeBytes(UnsafeBufferPointer(rebasing: bytes[runStart..<end])) }
            }
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\r"):
                    copyRun(upTo: index)
                    output.writeStaticString("\r\n")
                    index += index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\n") ? 2 : 1
                    runStart = index
                    atLineStart = true
                case UInt8(ascii: "\n"):
                    copyRun(upTo: index)
                    output.writeStaticString("\r\n")
                    index += 1
                    runStart = index
                    atLineStart = true
                case UInt8(ascii: ".") where atLineStart:
                    // The extra dot; the line's own dot starts the next run.
                    copyRun(upTo: index)
                    output.writeInteger(UInt8(ascii: "."))
                    runStart = index
                    index += 1
                    atLineStart = false
                default:
                    index += 1
                    atLineStart = false
                }
            }
            copyRun(upTo: bytes.count)
            if !atLineStart { output.writeStaticString("\r\n") }
        }
        output.writeStaticString(".\r\n")
        return output
    }
}
