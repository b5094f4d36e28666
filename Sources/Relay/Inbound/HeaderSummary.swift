/// What the intake needs to know about a message's header section
/// (RFC 5322 §2.2): how many trace fields, and whether Message-ID and Date
/// are present. Only the header section is scanned.
public struct HeaderSummary: Sendable, Equatable {
    public var receivedCount = 0
    public var hasMessageID = false
    public var hasDate = false

    public init(scanning content: [UInt8]) {
        var lineStart = 0
        let count = content.count
        while lineStart < count {
            // An empty line ends the header section.
            if content[lineStart] == 0x0D { break }
            var lineEnd = lineStart
            while lineEnd < count && content[lineEnd] != 0x0A { lineEnd += 1 }
            let first = content[lineStart]
            if first != 0x20 && first != 0x09 {
                // A new field, not a folded continuation.
                if Self.hasFieldName("received", content, lineStart, lineEnd) { receivedCount += 1 }
                else if Self.hasFieldName("message-id", content, lineStart, lineEnd) { hasMessageID = true }
                else if Self.hasFieldName("date", content, lineStart, lineEnd) { hasDate = true }
            }
            lineStart = lineEnd + 1
        }
    }

    /// Case-insensitive `name:` (optionally with white space before the colon).
    static func hasFieldName(_ name: StaticString, _ content: [UInt8], _ start: Int, _ end: Int) -> Bool {
        let length = name.utf8CodeUnitCount
        guard end - start > length else { return false }
        let matches = name.withUTF8Buffer { nameBytes -> Bool in
            for offset in 0..<length {
                var byte = content[start + offset]
                if byte >= 0x41 && byte <= 0x5A { byte |= 0x20 }
                if byte != nameBytes[offset] { return false }
            }
            return true
        }
        guard matches else { return false }
        var index = start + length
        while index < end && (content[index] == 0x20 || content[index] == 0x09) { index += 1 }
        return index < end && content[index] == UInt8(ascii: ":")
    }
}
