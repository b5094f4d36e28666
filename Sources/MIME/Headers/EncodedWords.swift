import Foundation

/// Decoding of RFC 2047 encoded words (`=?charset?B?…?=`, `=?charset?Q?…?=`),
/// for reading what a mail reader would display. Whatever cannot be decoded
/// is left as written; nothing here throws.
public enum EncodedWords {
    /// One encoded word decoded, or nil when `word` is not one.
    public static func decodeWord(_ word: String) -> String? {
        let bytes = Array(word.utf8)
        // RFC 2047 §2: at most 75 characters; a little slack for real-world senders.
        guard bytes.count >= 8, bytes.count <= 1024, bytes.starts(with: [0x3D, 0x3F]), bytes.suffix(2).elementsEqual([0x3F, 0x3D]) else {
            return nil
        }
        let inner = bytes[2..<(bytes.count - 2)]
        let parts = inner.split(separator: UInt8(ascii: "?"), maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[1].count == 1 else { return nil }
        // RFC 2231 §5: a language after '*' in the charset.
        let charset = String(decoding: parts[0].split(separator: UInt8(ascii: "*"), maxSplits: 1).first ?? parts[0], as: UTF8.self)
            .lowercased()
        let payload: [UInt8]
        switch parts[1].first {
        case UInt8(ascii: "B"), UInt8(ascii: "b"):
            guard let data = Data(base64Encoded: Data(parts[2]), options: .ignoreUnknownCharacters) else { return nil }
            payload = Array(data)
        case UInt8(ascii: "Q"), UInt8(ascii: "q"):
            payload = qDecode(parts[2])
        default:
            return nil
        }
        return decodeCharset(payload, charset: charset)
    }

    /// Every encoded word inside free text decoded (as in comments and
    /// quoted display names); white space between two encoded words dropped.
    public static func decodeText(_ text: String) -> String {
        guard text.contains("=?") else { return text }
        var output = ""
        var pendingSpace = ""
        var previousEncoded = false
        var word = ""
        func flushWord() {
            guard !word.isEmpty else { return }
            if let decoded = decodeWord(word) {
                if !previousEncoded { output += pendingSpace }
                output += decoded
                previousEncoded = true
            } else {
                output += pendingSpace + word
                previousEncoded = false
            }
            pendingSpace = ""
            word = ""
        }
        for character in text {
            if character == " " || character == "\t" {
                flushWord()
                pendingSpace.append(character)
            } else {
                word.append(character)
            }
        }
        flushWord()
        return output + pendingSpace
    }

    /// Every encoded word anywhere in `text` decoded, the way lenient readers
    /// do (Gmail, Thunderbird, Python's email package): inside atoms and
    /// quoted strings, split by dots, side by side without white space.
    /// `undecodable` is true when a word names a charset this decoder does
    /// not know (UTF-7, UTF-16…), whose text a reader might still show.
    public static func decodeAnywhere(_ text: String) -> (text: String, undecodable: Bool) {
        guard text.contains("=?") else { return (text, false) }
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var undecodable = false
        var index = 0
        // White space after a decoded word, held back until we know whether another word follows.
        var pendingSpace: [UInt8] = []
        var lastWasWord = false
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "="), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "?"),
               let end = wordEnd(bytes, from: index) {
                let word = String(decoding: bytes[index..<end], as: UTF8.self)
                if let decoded = decodeWord(word) {
                    if !lastWasWord { output += pendingSpace }
                    pendingSpace = []
                    output += Array(decoded.utf8)
                    if !knownCharset(word) { undecodable = true }
                    lastWasWord = true
                    index = end
                    continue
                }
            }
            let byte = bytes[index]
            if lastWasWord && (byte == 0x20 || byte == 0x09) {
                pendingSpace.append(byte)
            } else {
                output += pendingSpace
                pendingSpace = []
                output.append(byte)
                lastWasWord = false
            }
            index += 1
        }
        output += pendingSpace
        return (String(decoding: output, as: UTF8.self), undecodable)
    }

    /// The end of `=?charset?X?text?=` starting at `start`: four question
    /// marks, no white space, at most 1,024 bytes.
    static func wordEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        var marks = 0
        var index = start + 1
        while index < bytes.count, index - start < 1024 {
            let byte = bytes[index]
            if byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A { return nil }
            if byte == UInt8(ascii: "?") {
                marks += 1
                if marks >= 4, index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "=") { return index + 2 }
            }
            index += 1
        }
        return nil
    }

    /// Whether the word's charset is one `decodeCharset` really decodes.
    static func knownCharset(_ word: String) -> Bool {
        let charset = word.dropFirst(2).prefix { $0 != "?" && $0 != "*" }.lowercased()
        return ["utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin1", "iso_8859-1", "windows-1252", "cp1252",
                "iso-2022-jp", "shift_jis", "shift-jis", "sjis", "cp932", "windows-31j", "euc-jp"].contains(charset)
    }

    /// RFC 2047 §4.2: `_` is a space, `=XX` a byte.
    static func qDecode(_ text: ArraySlice<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let byte = text[index]
            if byte == UInt8(ascii: "_") {
                output.append(0x20)
            } else if byte == UInt8(ascii: "="), index + 2 < text.endIndex,
                      let high = hexValue(text[index + 1]), let low = hexValue(text[index + 2]) {
                output.append(high << 4 | low)
                index += 2
            } else {
                output.append(byte)
            }
            index += 1
        }
        return output
    }

    public static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Bytes in a charset as text; an unknown charset is read as UTF-8,
    /// invalid sequences replaced (what a lenient reader would show).
    static func decodeCharset(_ bytes: [UInt8], charset: String) -> String {
        let encoding: String.Encoding?
        switch charset {
        case "utf-8", "utf8", "us-ascii", "ascii": encoding = nil
        case "iso-8859-1", "latin1", "iso_8859-1": encoding = .isoLatin1
        case "windows-1252", "cp1252": encoding = .windowsCP1252
        case "iso-2022-jp": encoding = .iso2022JP
        case "shift_jis", "shift-jis", "sjis", "cp932", "windows-31j": encoding = .shiftJIS
        case "euc-jp": encoding = .japaneseEUC
        default: encoding = nil
        }
        if let encoding, let text = String(bytes: bytes, encoding: encoding) { return text }
        return String(decoding: bytes, as: UTF8.self)
    }
}
