import Foundation

/// Content-Transfer-Encodings (RFC 2045 §6), each producing CRLF lines of
/// at most 76 characters (far below the 998 of RFC 5322 §2.1.1).
public enum TransferEncoding: String, Sendable, Equatable {
    case sevenBit = "7bit"
    case quotedPrintable = "quoted-printable"
    case base64

    /// The cheapest safe encoding: 7bit for short-lined ASCII, quoted-printable
    /// for mostly-ASCII text, base64 for the rest (Japanese text, binaries).
    /// ISO-2022-JP text is 7-bit with escape sequences (ESC is expected there).
    static func choose(for bytes: [UInt8], isText: Bool, escapesAllowed: Bool = false) -> TransferEncoding {
        guard isText else { return .base64 }
        var high = 0
        var lineLength = 0
        var longLine = false
        var bareLineBreak = false
        var previous: UInt8 = 0
        for byte in bytes {
            if byte >= 0x80 || (byte < 0x20 && byte != 0x0D && byte != 0x0A && byte != 0x09 && !(escapesAllowed && byte == 0x1B)) || byte == 0x7F { high += 1 }
            if byte == 0x0A {
                if previous != 0x0D { bareLineBreak = true }
                lineLength = 0
            } else if byte != 0x0D {
                lineLength += 1
                if lineLength > 998 { longLine = true }
            }
            previous = byte
        }
        if high == 0 && !longLine && !bareLineBreak { return .sevenBit }
        return high * 3 > bytes.count ? .base64 : .quotedPrintable
    }

    func encode(_ bytes: [UInt8]) -> [UInt8] {
        switch self {
        case .sevenBit: return bytes
        case .quotedPrintable: return QuotedPrintable.encode(bytes)
        case .base64: return Base64Lines.encode(bytes)
        }
    }
}

enum Base64Lines {
    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        let text = Array(Data(bytes).base64EncodedString().utf8)
        var output: [UInt8] = []
        output.reserveCapacity(text.count + text.count / 38 + 2)
        var index = 0
        while index < text.count {
            let end = min(index + 76, text.count)
            output.append(contentsOf: text[index..<end])
            output.append(contentsOf: [0x0D, 0x0A])
            index = end
        }
        return output
    }
}

/// Quoted-printable (RFC 2045 §6.7): line breaks in the text stay line
/// breaks (CRLF, LF or CR alike), soft breaks keep lines ≤ 76.
public enum QuotedPrintable {
    static let hex = Array("0123456789ABCDEF".utf8)

    public static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count * 3 / 2)
        var line: [UInt8] = []
        func flushLine(hard: Bool) {
            // Trailing white space must be encoded (rule 3).
            if hard, let last = line.last, last == 0x20 || last == 0x09 {
                line.removeLast()
                line.append(contentsOf: [0x3D, hex[Int(last >> 4)], hex[Int(last & 15)]])
            }
            output.append(contentsOf: line)
            if !hard { output.append(0x3D) }
            output.append(contentsOf: [0x0D, 0x0A])
            line.removeAll(keepingCapacity: true)
        }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0D || byte == 0x0A {
                flushLine(hard: true)
                if byte == 0x0D, index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
                index += 1
                continue
            }
            let literal = (byte >= 0x21 && byte <= 0x7E && byte != 0x3D) || byte == 0x20 || byte == 0x09
            // A "." alone at a line start is escaped too, for SMTP's sake.
            let encoded: [UInt8] = literal && !(byte == 0x2E && line.isEmpty)
                ? [byte] : [0x3D, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            if line.count + encoded.count > 75 { flushLine(hard: false) }
            line.append(contentsOf: encoded)
            index += 1
        }
        if !line.isEmpty { flushLine(hard: true) }
        return output
    }
}
