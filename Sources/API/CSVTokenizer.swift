/// RFC 4180 records, read from bytes as they arrive: fields separated by
/// commas, quoted with `"` (a quoted field may hold commas, doubled quotes
/// and line breaks), records ended by CRLF or LF. A UTF-8 byte order mark
/// at the start is skipped.
///
/// It works on bytes, not characters, so that it reads Shift_JIS as well as
/// UTF-8: neither uses the bytes of `"`, `,`, CR or LF inside a multi-byte
/// character (Shift_JIS trail bytes are 0x40–0xFC). Decoding is the caller's.
/// Work and memory are bounded per record: a field past `maximumFieldBytes`
/// or a record past `maximumFields` is cut and flagged, never grown.
struct CSVTokenizer {
    struct Record {
        /// The line the record starts on (1 is the first).
        var line: Int
        var fields: [[UInt8]]
        /// A field or the record was longer than the limits and was cut.
        var overflow: Bool
    }

    var maximumFieldBytes = 64 * 1024
    var maximumFields = 256

    private var field: [UInt8] = []
    private var fields: [[UInt8]] = []
    private var quoted = false
    /// A quote was read inside a quoted field: the next byte says whether it was doubled.
    private var quotePending = false
    private var overflow = false
    private var line = 1
    private var start = 1
    /// Bytes of a possible byte order mark read so far at the very start; nil once past it.
    private var bomRead: Int? = 0
    /// The last byte read was CR (a CR LF pair counts as one line end).
    private var lastWasCR = false

    /// True while the last record read ended inside an open quote (at the end: an unterminated quote).
    var insideQuote: Bool { quoted && !quotePending }
    /// The line the record being read starts on.
    var recordStartLine: Int { start }

    /// Reads `bytes`, calling `emit` with every record completed; stops and returns false when `emit` does.
    mutating func feed(_ bytes: some Sequence<UInt8>, _ emit: (Record) -> Bool) -> Bool {
        for byte in bytes {
            if let read = bomRead {
                let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
                if byte == bom[read] {
                    bomRead = read + 1 == 3 ? nil : read + 1
                    continue
                }
                bomRead = nil
                // A partial mark was data after all.
                for earlier in bom.prefix(read) { append(earlier) }
            }
            if quotePending {
                quotePending = false
                if byte == UInt8(ascii: "\"") {
                    append(byte)
                    continue
                }
                quoted = false
            }
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    quotePending = true
                } else {
                    if byte == UInt8(ascii: "\n") { line += 1 }
                    append(byte)
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\"") where field.isEmpty:
                quoted = true
            case UInt8(ascii: ","):
                endField()
            case UInt8(ascii: "\r"):
                lastWasCR = true
                continue
            case UInt8(ascii: "\n"):
                endField()
                let record = Record(line: start, fields: fields, overflow: overflow)
                fields = []
                overflow = false
                line += 1
                start = line
                guard emit(record) else { return false }
            default:
                if lastWasCR { append(UInt8(ascii: "\r")) }
                append(byte)
            }
            lastWasCR = false
        }
        return true
    }

    /// The last record, when the input did not end with a line break.
    mutating func finish(_ emit: (Record) -> Bool) {
        if bomRead != nil { bomRead = nil }
        if !field.isEmpty || !fields.isEmpty || quoted {
            endField()
            let record = Record(line: start, fields: fields, overflow: overflow)
            fields = []
            _ = emit(record)
        }
    }

    private mutating func append(_ byte: UInt8) {
        if field.count < maximumFieldBytes { field.append(byte) } else { overflow = true }
    }

    private mutating func endField() {
        if fields.count < maximumFields { fields.append(field) } else { overflow = true }
        field = []
        field.reserveCapacity(32)
    }
}
