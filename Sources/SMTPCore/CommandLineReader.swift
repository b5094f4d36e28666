import NIOCore

/// Frames command lines out of the byte stream (RFC 5321 §2.3.8, §4.5.3.1.4).
///
/// Only CRLF ends a line. A bare LF or a bare CR anywhere in the line, or a
/// NUL byte, makes the whole line an error — this refuses the line-ending
/// confusions that SMTP smuggling relies on. An over-long line is skipped up
/// to its end without buffering it, so a client cannot grow our memory.
public struct CommandLineReader: Sendable {
    /// Maximum command line length including CRLF (RFC 5321: 512).
    public var maximumLineLength: Int

    private var skippingOverlongLine = false

    public init(maximumLineLength: Int = 512) {
        self.maximumLineLength = maximumLineLength
    }

    public enum Result: Equatable, Sendable {
        case incomplete
        case line([UInt8])
        case lineTooLong
        case bareLineEnding
        case nulCharacter
    }

    public mutating func read(_ buffer: inout ByteBuffer) -> Result {
        let view = buffer.readableBytesView
        guard let lfIndex = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if skippingOverlongLine || view.count > maximumLineLength {
                // Drop what we have, but keep a trailing CR: it may pair with the next LF.
                let keep = view.last == UInt8(ascii: "\r") ? 1 : 0
                buffer.moveReaderIndex(forwardBy: view.count - keep)
                skippingOverlongLine = true
            }
            return .incomplete
        }
        let lineLength = lfIndex - view.startIndex + 1
        defer { buffer.moveReaderIndex(forwardBy: lineLength) }
        if skippingOverlongLine {
            skippingOverlongLine = false
            return .lineTooLong
        }
        if lineLength > maximumLineLength { return .lineTooLong }
        let line = view[view.startIndex..<lfIndex]
        guard line.last == UInt8(ascii: "\r") else { return .bareLineEnding }
        let content = line.dropLast()
        if content.contains(UInt8(ascii: "\r")) { return .bareLineEnding }
        if content.contains(0) { return .nulCharacter }
        return .line(Array(content))
    }

    /// Forget any partial state, e.g. after STARTTLS (RFC 3207 §4.2).
    public mutating func reset() {
        skippingOverlongLine = false
    }
}
