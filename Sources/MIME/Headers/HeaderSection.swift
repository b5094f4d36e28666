/// The header section of a message (RFC 5322 §2.2), as every reader in
/// Hikyaku sees it: the From and sender policy, DKIM, the report parser and
/// the SES Raw path. One definition, so that what the policy checked is
/// exactly what is signed and what leaves.
///
/// Lines end with CRLF only. A bare CR or a bare LF inside the header section
/// is an error, never joined to a line or split off as a new one: a
/// receiver could read the same bytes as a different set of fields (a
/// `Subject: hi\rFrom: ceo@victim.example` is one field here and two
/// lines for some readers). A field starts with a name of printable ASCII
/// and a colon (obs-syntax allows white space before the colon); a line
/// starting with white space continues the field above it (folding). The
/// section ends at the first empty line, or at the end of a message
/// without a body.
public struct HeaderSection: Sendable {
    /// One header field, by byte positions in the message it was parsed from.
    public struct Field: Sendable, Equatable {
        /// The name as written (ASCII), without the white space before the colon.
        public var name: String
        /// The whole field, name to the last byte before its final CRLF (folding included).
        public var range: Range<Int>
        /// The value: from after the colon to the last byte before the final CRLF, still folded.
        public var valueRange: Range<Int>

        /// Case-insensitive comparison with `other` (field names are ASCII).
        public func hasName(_ other: String) -> Bool {
            name.utf8.count == other.utf8.count && zip(name.utf8, other.utf8).allSatisfy { Self.lower($0) == Self.lower($1) }
        }

        static func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }
    }

    /// Bounds on the work and memory one message may cost.
    public struct Limits: Sendable, Equatable {
        /// Bytes of the whole header section.
        public var maximumSize: Int
        /// Number of fields.
        public var maximumFields: Int

        public init(maximumSize: Int = 1 << 20, maximumFields: Int = 1000) {
            self.maximumSize = maximumSize
            self.maximumFields = maximumFields
        }
    }

    /// Why a header section is refused; `line` counts from 1.
    public enum Malformed: Error, Sendable, Equatable, CustomStringConvertible {
        case bareCarriageReturn(line: Int)
        case bareLineFeed(line: Int)
        case nulCharacter(line: Int)
        /// A line that neither starts a field (`name:`) nor continues one.
        case notAField(line: Int)
        /// White space on the first line: a continuation of nothing.
        case continuationFirst
        case tooLarge(limit: Int)
        case tooManyFields(limit: Int)

        public var description: String {
            switch self {
            case .bareCarriageReturn(let line): return "bare CR in header line \(line) (lines end with CRLF)"
            case .bareLineFeed(let line): return "bare LF in header line \(line) (lines end with CRLF)"
            case .nulCharacter(let line): return "NUL in header line \(line)"
            case .notAField(let line): return "header line \(line) is not a field (name, then colon)"
            case .continuationFirst: return "the header section starts with a folded line"
            case .tooLarge(let limit): return "header section larger than \(limit) bytes"
            case .tooManyFields(let limit): return "more than \(limit) header fields"
            }
        }
    }

    public private(set) var fields: [Field]
    /// Where the body starts: after the empty line, or the message's end.
    public private(set) var bodyStart: Int
    /// Where the header section ends: the first byte of the empty line (or the message's end).
    public private(set) var end: Int

    /// Parses the header section at the start of `message`.
    public init(parsing message: [UInt8], limits: Limits = Limits()) throws(Malformed) {
        try self.init(parsing: message[...], limits: limits)
    }

    /// Parses the header section at the start of `message`; positions are indices of `message`.
    public init(parsing message: ArraySlice<UInt8>, limits: Limits = Limits()) throws(Malformed) {
        var fields: [Field] = []
        var index = message.startIndex
        let end = message.endIndex
        var line = 0
        var current: (name: String, start: Int, valueStart: Int)?
        var sectionEnd = end
        var bodyStart = end
        // Where the line before the current one ended (its CR, or the end).
        var previousLineEnd = index
        func close(at fieldEnd: Int) throws(Malformed) {
            guard let open = current else { return }
            guard fields.count < limits.maximumFields else { throw .tooManyFields(limit: limits.maximumFields) }
            fields.append(Field(name: open.name, range: open.start..<fieldEnd, valueRange: open.valueStart..<fieldEnd))
            current = nil
        }
        var foundEmptyLine = false
        while index < end {
            line += 1
            // Find this line's CRLF, refusing a lone CR or LF on the way.
            var cursor = index
            var lineEnd = end
            var next = end
            while cursor < end {
                let byte = message[cursor]
                if byte == 0x0D {
                    guard cursor + 1 < end, message[cursor + 1] == 0x0A else { throw .bareCarriageReturn(line: line) }
                    lineEnd = cursor
                    next = cursor + 2
                    break
                }
                if byte == 0x0A { throw .bareLineFeed(line: line) }
                if byte == 0 { throw .nulCharacter(line: line) }
                cursor += 1
                if cursor - message.startIndex > limits.maximumSize { throw .tooLarge(limit: limits.maximumSize) }
            }
            if lineEnd == index {
                // The empty line: the body follows.
                try close(at: previousLineEnd)
                sectionEnd = index
                bodyStart = next
                foundEmptyLine = true
                break
            }
            let first = message[index]
            if first == 0x20 || first == 0x09 {
                guard current != nil else { throw .continuationFirst }
            } else {
                try close(at: previousLineEnd)
                // field-name = 1*ftext (printable ASCII but colon), then obs WSP, then ":".
                var nameEnd = index
                while nameEnd < lineEnd, message[nameEnd] >= 33, message[nameEnd] <= 126, message[nameEnd] != 0x3A { nameEnd += 1 }
                var colon = nameEnd
                while colon < lineEnd, message[colon] == 0x20 || message[colon] == 0x09 { colon += 1 }
                guard nameEnd > index, colon < lineEnd, message[colon] == 0x3A else { throw .notAField(line: line) }
                current = (String(decoding: message[index..<nameEnd], as: UTF8.self), index, colon + 1)
            }
            previousLineEnd = lineEnd
            index = next
        }
        if !foundEmptyLine { try close(at: previousLineEnd) }
        self.fields = fields
        self.end = sectionEnd
        self.bodyStart = bodyStart
    }

    /// The fields called `name` (case-insensitive), in order.
    public func fields(named name: String) -> [Field] {
        fields.filter { $0.hasName(name) }
    }

    /// The first field called `name`, if any.
    public func first(_ name: String) -> Field? {
        fields.first { $0.hasName(name) }
    }
}

extension HeaderSection.Field {
    /// The value unfolded (RFC 5322 §2.2.3: each CRLF before white space
    /// removed), leading and trailing white space trimmed, decoded as UTF-8
    /// with invalid bytes replaced.
    public func unfoldedValue(in message: [UInt8]) -> String {
        unfoldedValue(in: message[...])
    }

    public func unfoldedValue(in message: ArraySlice<UInt8>) -> String {
        String(decoding: unfoldedBytes(in: message), as: UTF8.self)
    }

    /// The value's bytes unfolded and trimmed, as `unfoldedValue`.
    public func unfoldedBytes(in message: ArraySlice<UInt8>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(valueRange.count)
        for byte in message[valueRange] where byte != 0x0D && byte != 0x0A { bytes.append(byte) }
        var start = 0
        var stop = bytes.count
        while start < stop, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while stop > start, bytes[stop - 1] == 0x20 || bytes[stop - 1] == 0x09 { stop -= 1 }
        return Array(bytes[start..<stop])
    }
}
