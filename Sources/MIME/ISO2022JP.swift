import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// ISO-2022-JP (RFC 1468) through the C library's iconv, which knows the
/// JIS X 0208 table. Half-width katakana, which ISO-2022-JP cannot carry,
/// become their full-width forms first (as Japanese mailers do); anything
/// else outside JIS X 0208 is an error rather than a silent "?".
public enum ISO2022JP {
    public static func encode(_ text: String) throws(MIMEError) -> [UInt8] {
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return Array(text.utf8) }
        var input = Array(widenHalfwidthKatakana(text).utf8)
        let converter = iconv_open("ISO-2022-JP", "UTF-8")
        guard converter != iconv_t(bitPattern: -1) else { throw .notRepresentable(charset: "ISO-2022-JP", text: text) }
        defer { iconv_close(converter) }
        var output = [UInt8](repeating: 0, count: input.count * 4 + 16)
        let produced: Int? = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                guard let sourceBase = source.baseAddress, let targetBase = target.baseAddress else { return nil }
                var inPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(sourceBase).assumingMemoryBound(to: CChar.self)
                var inLeft = source.count
                var outPointer: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(targetBase).assumingMemoryBound(to: CChar.self)
                var outLeft = target.count
                guard iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft) != -1 else { return nil }
                // Return to ASCII at the end (the closing ESC ( B).
                guard iconv(converter, nil, nil, &outPointer, &outLeft) != -1 else { return nil }
                return target.count - outLeft
            }
        }
        guard let produced else { throw .notRepresentable(charset: "ISO-2022-JP", text: text) }
        return Array(output[..<produced])
    }

    /// U+FF61–U+FF9F to their full-width equivalents, voiced marks composed
    /// (ｶﾞ → ガ), by compatibility decomposition of just those runs.
    static func widenHalfwidthKatakana(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isHalfwidthKana) else { return text }
        var result = ""
        var run = ""
        for scalar in text.unicodeScalars {
            if isHalfwidthKana(scalar) {
                run.unicodeScalars.append(scalar)
            } else {
                if !run.isEmpty { result += widen(run); run = "" }
                result.unicodeScalars.append(scalar)
            }
        }
        if !run.isEmpty { result += widen(run) }
        return result
    }

    /// NFKD then NFC: Foundation on Linux leaves the voiced mark apart in plain NFKC.
    static func widen(_ run: String) -> String {
        run.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
    }

    static func isHalfwidthKana(_ scalar: Unicode.Scalar) -> Bool { (0xFF61...0xFF9F).contains(scalar.value) }
}
