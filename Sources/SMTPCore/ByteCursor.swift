/// A read position over bytes, for the recursive-descent parsers.
struct ByteCursor {
    let bytes: [UInt8]
    var index: Int

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.index = 0
    }

    var isAtEnd: Bool { index >= bytes.count }
    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }
    var remaining: ArraySlice<UInt8> { bytes[index...] }

    mutating func take() -> UInt8? {
        guard index < bytes.count else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index += 1
        return true
    }

    /// Case-insensitive ASCII prefix match; consumes it when present.
    mutating func consumeCaseInsensitive(_ literal: String) -> Bool {
        let literalBytes = Array(literal.utf8)
        guard bytes.count - index >= literalBytes.count else { return false }
        for (offset, expected) in literalBytes.enumerated()
        where ASCII.lowercased(bytes[index + offset]) != ASCII.lowercased(expected) {
            return false
        }
        index += literalBytes.count
        return true
    }

    mutating func take(while predicate: (UInt8) -> Bool) -> ArraySlice<UInt8> {
        let start = index
        while let byte = peek, predicate(byte) { index += 1 }
        return bytes[start..<index]
    }
}

/// Character classes of RFC 5321 / RFC 5322 (and RFC 6531 for UTF-8).
enum ASCII {
    static func lowercased(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
    }
    static func isAlpha(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isLetDig(_ b: UInt8) -> Bool { isAlpha(b) || isDigit(b) }
    /// RFC 5322 atext.
    static func isAtext(_ b: UInt8) -> Bool {
        if isLetDig(b) { return true }
        switch b {
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"),
             UInt8(ascii: "="), UInt8(ascii: "?"), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"),
             UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
    /// RFC 5321 qtextSMTP: %d32-33 / %d35-91 / %d93-126.
    static func isQtextSMTP(_ b: UInt8) -> Bool {
        (b >= 32 && b <= 33) || (b >= 35 && b <= 91) || (b >= 93 && b <= 126)
    }
}

/// Validates UTF-8 and returns the number of bytes of the scalar starting at
/// `index`, or nil if it is not a valid non-ASCII scalar (RFC 6531 UTF8-non-ascii).
func utf8NonASCIILength(_ bytes: [UInt8], at index: Int) -> Int? {
    let first = bytes[index]
    let length: Int
    switch first {
    case 0xC2...0xDF: length = 2
    case 0xE0...0xEF: length = 3
    case 0xF0...0xF4: length = 4
    default: return nil
    }
    guard index + length <= bytes.count else { return nil }
    let slice = bytes[index..<(index + length)]
    guard String(validating: slice, as: UTF8.self) != nil else { return nil }
    return length
}
