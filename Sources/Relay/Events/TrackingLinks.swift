import Crypto
import Foundation
import NIOConcurrencyHelpers
import Spool

/// Open and click tracking: the tokens in `/t/o/{token}` (the image) and
/// `/t/c/{token}` (a link), and the rewriting of a message's HTML.
///
/// A token carries the message, the recipient's position and, for a click,
/// the original URL, with a MAC over all of it: the redirect goes only to
/// a URL that was in the message (no open redirect), and a token altered in
/// any byte is refused like one that never existed.
public final class TrackingLinks: Sendable {
    public enum Kind: UInt8, Sendable {
        case open = 0x6F // "o"
        case click = 0x63 // "c"
    }

    public struct Target: Sendable, Equatable {
        public var kind: Kind
        public var message: MessageID
        public var position: Int
        /// The original URL, for clicks.
        public var url: String?
    }

    private let key: SymmetricKey
    private let base = NIOLockedValueBox<String?>(nil)
    /// Links this long or longer are left as they are (a token must fit a URL).
    static let maximumURLLength = 2000
    /// Tokens longer than this are refused before decoding.
    static let maximumTokenLength = 2800

    public init(key: SymmetricKey, base: String?) {
        self.key = key
        self.base.withLockedValue { $0 = base.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } }
    }

    /// The base URL when none is configured: the API's own address, once bound.
    public func setBaseIfUnset(_ url: String) {
        base.withLockedValue { if $0 == nil { $0 = url } }
    }

    public var baseURL: String? { base.withLockedValue { $0 } }

    public func token(_ kind: Kind, message: MessageID, position: Int, url: String? = nil) -> String {
        var payload: [UInt8] = [1, kind.rawValue]
        payload += Array(message.rawValue.utf8)
        let clamped = UInt16(clamping: position)
        payload += [UInt8(clamped >> 8), UInt8(clamped & 0xFF)]
        if let url { payload += Array(url.utf8) }
        let mac = HMAC<SHA256>.authenticationCode(for: payload, using: key)
        return TrackingLinks.base64URL(payload + Array(mac.prefix(16)))
    }

    /// The target of a token, or nil when it is malformed or its MAC does not match (checked in constant time).
    public func decode(_ token: String) -> Target? {
        guard token.utf8.count <= TrackingLinks.maximumTokenLength, let bytes = TrackingLinks.decodeBase64URL(token),
              bytes.count >= 2 + 20 + 2 + 16 else { return nil }
        let payload = Array(bytes.dropLast(16))
        let given = bytes.suffix(16)
        let expected = HMAC<SHA256>.authenticationCode(for: payload, using: key).prefix(16)
        guard zip(expected, given).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
        guard payload[0] == 1, let kind = Kind(rawValue: payload[1]),
              let message = MessageID(String(decoding: payload[2..<22], as: UTF8.self)) else { return nil }
        let position = Int(payload[22]) << 8 | Int(payload[23])
        let rest = payload[24...]
        switch kind {
        case .open:
            guard rest.isEmpty else { return nil }
            return Target(kind: kind, message: message, position: position, url: nil)
        case .click:
            guard let url = String(validating: rest, as: UTF8.self), TrackedHTML.isTrackable(url),
                  !rest.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return nil }
            return Target(kind: kind, message: message, position: position, url: url)
        }
    }

    /// The HTML of one recipient's copy with its links and image in place;
    /// unchanged when no base URL is known yet.
    public func rewrite(_ html: String, message: MessageID, position: Int, opens: Bool, clicks: Bool) -> String {
        guard let base = baseURL else { return html }
        let unsubscribePrefix = base + "/u/"
        return TrackedHTML.rewrite(
            html,
            pixel: opens ? "\(base)/t/o/\(token(.open, message: message, position: position))" : nil,
            link: clicks ? { url in
                guard !url.hasPrefix(unsubscribePrefix), url.utf8.count < TrackingLinks.maximumURLLength else { return nil }
                return "\(base)/t/c/\(self.token(.click, message: message, position: position, url: url))"
            } : nil)
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL(_ text: String) -> [UInt8]? {
        guard text.utf8.allSatisfy({ $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else { return nil }
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.utf8.count % 4) % 4)
        return Data(base64Encoded: standard).map(Array.init)
    }
}

extension UInt8 {
    var isASCIIAlphanumeric: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self)
    }
}

/// The HTML rewriting itself: `<a href>` of http(s) links (unless the tag
/// says `clicktracking="off"`, as SendGrid's, or `data-hikyaku-track="off"`)
/// and a 1×1 image before `</body>`. `mailto:`, `tel:`, anchors and
/// relative links are never touched, nor is anything outside `<a>` tags.
public enum TrackedHTML {
    public static func isTrackable(_ url: String) -> Bool {
        let lower = url.lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://")
    }

    public static func rewrite(_ html: String, pixel: String?, link: ((String) -> String?)?) -> String {
        var bytes = Array(html.utf8)
        if let link { bytes = rewriteLinks(bytes, link) }
        if let pixel {
            let image = Array("<img src=\"\(pixel)\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;width:1px;height:1px;border:0\">".utf8)
            if let close = lastIndex(of: Array("</body".utf8), in: bytes) {
                bytes.insert(contentsOf: image, at: close)
            } else {
                bytes += image
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func rewriteLinks(_ bytes: [UInt8], _ link: (String) -> String?) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + bytes.count / 4)
        var index = 0
        while index < bytes.count {
            // `<a` followed by whitespace: an anchor's start tag.
            guard bytes[index] == UInt8(ascii: "<"), index + 2 < bytes.count, bytes[index + 1] | 0x20 == UInt8(ascii: "a"),
                  isSpace(bytes[index + 2]) else {
                output.append(bytes[index])
                index += 1
                continue
            }
            guard let tag = scanTag(bytes, from: index + 2) else {
                output += bytes[index...]
                break
            }
            output += rewriteTag(bytes, start: index, tag: tag, link) ?? Array(bytes[index...tag.end])
            index = tag.end + 1
        }
        return output
    }

    struct Attribute {
        var name: String
        var value: String
        /// Where the value is in the document (inside the quotes when quoted).
        var valueRange: Range<Int>
        var quoted: Bool
    }

    /// The attributes of a start tag and the index of its closing `>`,
    /// tokenized as HTML does: a quote matters only where a value begins;
    /// an unquoted value ends at whitespace or `>`. Nil: the tag never ends.
    static func scanTag(_ bytes: [UInt8], from start: Int) -> (attributes: [Attribute], end: Int)? {
        var attributes: [Attribute] = []
        var index = start
        while true {
            while index < bytes.count, isSpace(bytes[index]) || bytes[index] == UInt8(ascii: "/") { index += 1 }
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: ">") { return (attributes, index) }
            let nameStart = index
            index += 1
            while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: "="), bytes[index] != UInt8(ascii: ">"),
                  bytes[index] != UInt8(ascii: "/") { index += 1 }
            let name = String(decoding: bytes[nameStart..<index], as: UTF8.self).lowercased()
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else {
                attributes.append(Attribute(name: name, value: "", valueRange: index..<index, quoted: false))
                continue
            }
            index += 1
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") {
                let quote = bytes[index]
                let valueStart = index + 1
                guard let valueEnd = bytes[valueStart...].firstIndex(of: quote) else { return nil }
                attributes.append(Attribute(name: name, value: String(decoding: bytes[valueStart..<valueEnd], as: UTF8.self),
                                            valueRange: valueStart..<valueEnd, quoted: true))
                index = valueEnd + 1
            } else {
                let valueStart = index
                while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: ">") { index += 1 }
                attributes.append(Attribute(name: name, value: String(decoding: bytes[valueStart..<index], as: UTF8.self),
                                            valueRange: valueStart..<index, quoted: false))
            }
        }
    }

    /// One `<a …>` tag (from `start` to `tag.end`) with its href replaced, or nil to keep it as it is.
    static func rewriteTag(_ bytes: [UInt8], start: Int, tag: (attributes: [Attribute], end: Int), _ link: (String) -> String?) -> [UInt8]? {
        let attributes = tag.attributes
        for name in ["clicktracking", "data-hikyaku-track"] where attributes.contains(where: { $0.name == name && $0.value.lowercased() == "off" }) {
            return nil
        }
        guard let href = attributes.first(where: { $0.name == "href" }) else { return nil }
        let url = followedURL(href.value)
        guard isTrackable(url), !url.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }), let replacement = link(url) else { return nil }
        var result = Array(bytes[start..<href.valueRange.lowerBound])
        if !href.quoted { result.append(UInt8(ascii: "\"")) }
        result += Array(replacement.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;").utf8)
        if !href.quoted { result.append(UInt8(ascii: "\"")) }
        result += bytes[href.valueRange.upperBound...tag.end]
        return result
    }

    /// The URL a browser follows for an href value: character references
    /// decoded (once), tab, CR and LF removed, C0 controls and spaces trimmed
    /// at both ends (WHATWG URL parsing), so the redirect goes where the link did.
    static func followedURL(_ value: String) -> String {
        let decoded = decodeEntities(value).unicodeScalars.filter { $0 != "\t" && $0 != "\n" && $0 != "\r" }
        var scalars = Substring(String(String.UnicodeScalarView(decoded))).unicodeScalars[...]
        while let first = scalars.first, first.value <= 0x20 { scalars = scalars.dropFirst() }
        while let last = scalars.last, last.value <= 0x20 { scalars = scalars.dropLast() }
        return String(String.UnicodeScalarView(scalars))
    }

    static let namedReferences: [String: Unicode.Scalar] = ["amp": "&", "quot": "\"", "apos": "'", "lt": "<", "gt": ">", "nbsp": "\u{A0}",
                                                              "sol": "/", "colon": ":", "tab": "\t", "newline": "\n"]

    /// Character references (`&amp;`, `&#38;`, `&#x26;`…) decoded in one pass; an unknown one stays as it is.
    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var output = String.UnicodeScalarView()
        var scalars = text.unicodeScalars[...]
        while let scalar = scalars.first {
            scalars = scalars.dropFirst()
            guard scalar == "&", let end = scalars.prefix(12).firstIndex(of: ";") else {
                output.append(scalar)
                continue
            }
            let name = String(String.UnicodeScalarView(scalars[..<end]))
            var decoded: Unicode.Scalar?
            if name.hasPrefix("#x") || name.hasPrefix("#X") {
                decoded = UInt32(name.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
            } else if name.hasPrefix("#") {
                decoded = UInt32(name.dropFirst(), radix: 10).flatMap(Unicode.Scalar.init)
            } else {
                decoded = namedReferences[name.lowercased()]
            }
            if let decoded {
                output.append(decoded)
                scalars = scalars[scalars.index(after: end)...]
            } else {
                output.append(scalar)
            }
        }
        return String(output)
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D || byte == 0x0C
    }

    static func lastIndex(of needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var index = bytes.count - needle.count
        while index >= 0 {
            if zip(needle, bytes[index..<(index + needle.count)]).allSatisfy({ $0 | 0x20 == $1 | 0x20 }) { return index }
            index -= 1
        }
        return nil
    }
}

/// Whether an open or a click came from a machine rather than the reader:
/// privacy proxies that fetch every image (Apple Mail Privacy Protection),
/// security scanners that follow every link, and anything within seconds
/// of the delivery. Counted apart, never dropped.
public struct EngagementClassifier: Sendable {
    /// An open or click this soon after the delivery is a machine's.
    public var window: TimeInterval

    public init(window: TimeInterval = 10) {
        self.window = window
    }

    static let machineAgents = ["bot", "crawler", "spider", "preview", "scanner", "barracuda", "mimecast", "proofpoint",
                                "safelinks", "python-", "curl/", "wget/", "go-http-client", "java/", "okhttp", "headless",
                                "microsoft office protocol discovery", "yahoomailproxy"]

    public func isMachine(userAgent: String?, head: Bool, deliveredAt: Date?, at time: Date) -> Bool {
        if head { return true }
        let agent = (userAgent ?? "").lowercased()
        // Apple's privacy proxy sends a bare "Mozilla/5.0"; no agent at all is no reader's mail client either.
        if agent.isEmpty || agent == "mozilla/5.0" { return true }
        if EngagementClassifier.machineAgents.contains(where: agent.contains) { return true }
        if let deliveredAt, time.timeIntervalSince(deliveredAt) < window { return true }
        return false
    }
}
