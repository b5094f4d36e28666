import NIOCore

/// The header a load balancer sends before anything else on a connection it
/// forwards, naming the client it accepted (the PROXY protocol of HAProxy,
/// versions 1 and 2: haproxy.org/download/2.9/doc/proxy-protocol.txt).
/// Postfix reads it with `smtpd_upstream_proxy_protocol = haproxy`.
public struct ProxyHeader: Sendable, Equatable {
    public enum Version: Sendable, Equatable { case v1, v2 }

    public var version: Version
    /// The client the proxy accepted; nil for the proxy's own connection (v2 `LOCAL`, v1 `UNKNOWN`,
    /// an address family other than TCP over IPv4 or IPv6), which is then taken as it is.
    public var source: SocketAddress?

    public init(version: Version, source: SocketAddress?) {
        self.version = version
        self.source = source
    }

    /// What the first bytes of a connection are.
    public enum Parse: Sendable, Equatable {
        /// A header may still follow: read more.
        case incomplete
        /// A header, and how many bytes it took.
        case header(ProxyHeader, length: Int)
        case invalid(String)
    }

    /// A version 1 header is at most this long, CRLF included.
    public static let maximumV1Length = 107
    /// A version 2 header's address and TLV block is read up to this length (HAProxy's TLVs, SSL
    /// details included, stay well below it); a longer one is refused, not buffered.
    public static let maximumV2Payload = 4096

    static let v1Signature = Array("PROXY ".utf8)
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// Reads a header from the start of `bytes`, which may hold what follows it too.
    public static func parse(_ bytes: some Collection<UInt8>) -> Parse {
        let bytes = Array(bytes)
        guard let first = bytes.first else { return .incomplete }
        if first == v1Signature[0] { return parseV1(bytes) }
        if first == v2Signature[0] { return parseV2(bytes) }
        return .invalid("not a PROXY protocol header")
    }

    // MARK: Version 1: "PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\r\n"

    static func parseV1(_ bytes: [UInt8]) -> Parse {
        let prefix = min(bytes.count, v1Signature.count)
        guard bytes[..<prefix].elementsEqual(v1Signature[..<prefix]) else { return .invalid("not a PROXY protocol header") }
        // The CR must leave room for its LF within the 107 bytes.
        let window = bytes.prefix(maximumV1Length - 1)
        guard let cr = window.firstIndex(where: { $0 == 0x0D || $0 == 0x0A }) else {
            return window.count < maximumV1Length - 1 ? .incomplete : .invalid("version 1 header longer than \(maximumV1Length) bytes")
        }
        guard bytes[cr] == 0x0D else { return .invalid("version 1 header ended by a bare LF") }
        guard cr + 1 < bytes.count else { return .incomplete }
        guard bytes[cr + 1] == 0x0A else { return .invalid("version 1 header not ended by CRLF") }
        let line = bytes[v1Signature.count..<cr]
        guard line.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return .invalid("version 1 header with a control or non-ASCII byte") }
        let fields = line.split(separator: 0x20, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let length = cr + 2
        // UNKNOWN: the proxy could not tell (or it is its own connection); whatever follows is ignored.
        if fields.first == "UNKNOWN" { return .header(ProxyHeader(version: .v1, source: nil), length: length) }
        guard fields.count == 5, fields[0] == "TCP4" || fields[0] == "TCP6" else {
            return .invalid("version 1 header is not TCP4, TCP6 or UNKNOWN with two addresses and two ports")
        }
        guard let sourcePort = port(fields[3]), port(fields[4]) != nil else { return .invalid("version 1 header with an invalid port") }
        guard let source = address(fields[1], port: sourcePort, ipv6: fields[0] == "TCP6"),
              address(fields[2], port: 0, ipv6: fields[0] == "TCP6") != nil else {
            return .invalid("version 1 header with an address not of its family")
        }
        return .header(ProxyHeader(version: .v1, source: source), length: length)
    }

    /// A decimal port, 0–65535, without a sign or a leading zero.
    static func port(_ text: String) -> Int? {
        guard (1...5).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              text == "0" || text.utf8.first != 0x30 else { return nil }
        // At most five digits: the value fits whatever they are.
        let value = text.utf8.reduce(0) { $0 * 10 + Int(truncatingIfNeeded: $1 &- 0x30) }
        return value <= 65535 ? value : nil
    }

    static func address(_ text: String, port: Int, ipv6: Bool) -> SocketAddress? {
        // Only the textual forms of the family: no IPv4 in a TCP6 line, no zone index, no brackets.
        guard ipv6 ? text.contains(":") && !text.contains("%") : text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }),
              let address = try? SocketAddress(ipAddress: text, port: port) else { return nil }
        switch address {
        case .v4 where !ipv6, .v6 where ipv6: return address
        default: return nil
        }
    }

    // MARK: Version 2: a 16-byte binary prefix, then the addresses and TLVs

    static func parseV2(_ bytes: [UInt8]) -> Parse {
        let prefix = min(bytes.count, v2Signature.count)
        guard bytes[..<prefix].elementsEqual(v2Signature[..<prefix]) else { return .invalid("not a PROXY protocol header") }
        guard bytes.count >= 16 else { return .incomplete }
        let versionAndCommand = bytes[12], family = bytes[13]
        guard versionAndCommand >> 4 == 2 else { return .invalid("version 2 header of another version (\(versionAndCommand >> 4))") }
        let payload = Int(truncatingIfNeeded: bytes[14]) << 8 | Int(truncatingIfNeeded: bytes[15])
        guard payload <= maximumV2Payload else { return .invalid("version 2 header of \(payload) bytes, more than \(maximumV2Payload)") }
        guard bytes.count >= 16 + payload else { return .incomplete }
        let length = 16 + payload
        switch versionAndCommand & 0x0F {
        case 0x0:
            // LOCAL: the proxy's own connection (a health check); its addresses, if any, are ignored.
            return .header(ProxyHeader(version: .v2, source: nil), length: length)
        case 0x1:
            break
        default:
            return .invalid("version 2 header with an unknown command")
        }
        let block = bytes[16..<length]
        switch family {
        case 0x11, 0x21:
            // TCP over IPv4 or IPv6: source, destination, source port, destination port.
            let width = family == 0x11 ? 4 : 16
            guard block.count >= 2 * width + 4 else { return .invalid("version 2 header too short for its addresses") }
            let start = block.startIndex
            let port = Int(truncatingIfNeeded: block[start + 2 * width]) << 8 | Int(truncatingIfNeeded: block[start + 2 * width + 1])
            guard let source = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: block[start..<(start + width)]), port: port) else {
                return .invalid("version 2 header with an unreadable address")
            }
            return .header(ProxyHeader(version: .v2, source: source), length: length)
        default:
            // UNSPEC, UDP or UNIX: the spec has the receiver use the connection's own addresses.
            return .header(ProxyHeader(version: .v2, source: nil), length: length)
        }
    }
}
