import NIOCore
import Testing
@testable import SMTPCore

struct ProxyHeaderTests {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    static func v2(command: UInt8 = 0x21, family: UInt8, _ block: [UInt8]) -> [UInt8] {
        signature + [command, family, UInt8(block.count >> 8), UInt8(block.count & 0xFF)] + block
    }

    func source(_ parse: ProxyHeader.Parse) -> String? {
        guard case .header(let header, _) = parse, let source = header.source else { return nil }
        return "\(source.ipAddress ?? "?") \(source.port ?? -1)"
    }

    @Test func versionOneNamesTheClient() {
        let bytes = Array("PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\r\nEHLO x\r\n".utf8)
        let parse = ProxyHeader.parse(bytes)
        #expect(source(parse) == "192.0.2.1 56324")
        guard case .header(let header, let length) = parse else { Issue.record("no header"); return }
        #expect(header.version == .v1 && length == bytes.count - "EHLO x\r\n".utf8.count)
        #expect(source(ProxyHeader.parse(Array("PROXY TCP6 2001:db8::1 2001:db8::2 1 25\r\n".utf8))) == "2001:db8::1 1")
        #expect(ProxyHeader.parse(Array("PROXY UNKNOWN\r\n".utf8)) == .header(ProxyHeader(version: .v1, source: nil), length: 15))
    }

    @Test func versionTwoNamesTheClient() throws {
        let tcp4 = ProxyHeaderTests.v2(family: 0x11, [192, 0, 2, 1, 198, 51, 100, 1, 0xDC, 0x04, 0, 25])
        #expect(source(ProxyHeader.parse(tcp4 + Array("EHLO x\r\n".utf8))) == "192.0.2.1 56324")
        let tcp6 = ProxyHeaderTests.v2(family: 0x21, [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1]
                                       + [UInt8](repeating: 0, count: 16) + [0, 1, 0, 25])
        #expect(source(ProxyHeader.parse(tcp6)) == "2001:db8::1 1")
        // TLVs after the addresses are skipped with them.
        let tlv = ProxyHeaderTests.v2(family: 0x11, [192, 0, 2, 1, 198, 51, 100, 1, 0, 1, 0, 25, 0x05, 0x00, 0x02, 0x61, 0x62])
        #expect(ProxyHeader.parse(tlv) == .header(ProxyHeader(version: .v2, source: try SocketAddress(ipAddress: "192.0.2.1", port: 1)),
                                                  length: tlv.count))
        // LOCAL (a health check) and families other than TCP: the connection is taken as it is.
        #expect(ProxyHeader.parse(ProxyHeaderTests.v2(command: 0x20, family: 0x00, [])) == .header(ProxyHeader(version: .v2, source: nil), length: 16))
        #expect(source(ProxyHeader.parse(ProxyHeaderTests.v2(family: 0x31, [UInt8](repeating: 0, count: 216)))) == nil)
    }

    @Test func everyPrefixIsIncomplete() {
        let headers = [Array("PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\r\n".utf8),
                       ProxyHeaderTests.v2(family: 0x11, [192, 0, 2, 1, 198, 51, 100, 1, 0, 1, 0, 25])]
        for header in headers {
            for end in 0..<header.count { #expect(ProxyHeader.parse(header[..<end]) == .incomplete, "\(end)") }
        }
    }

    @Test(arguments: [
        "EHLO example.com\r\n",                                  // not a header at all
        "PROXY TCP4 192.0.2.1 198.51.100.1 56324 25\n",          // bare LF
        "PROXY TCP4 192.0.2.1 198.51.100.1 056324 25\r\n",       // leading zero
        "PROXY TCP4 192.0.2.1 198.51.100.1 65536 25\r\n",        // port out of range
        "PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n",          // address of the other family
        "PROXY TCP6 192.0.2.1 2001:db8::2 1 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.1 1\r\n",               // a field missing
        "PROXY TCP4  192.0.2.1 198.51.100.1 1 25\r\n",           // two spaces
        "PROXY UDP4 192.0.2.1 198.51.100.1 1 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.1 1 25 x\r\n",
        "proxy TCP4 192.0.2.1 198.51.100.1 1 25\r\n",
    ])
    func malformedVersionOneIsRefused(_ text: String) {
        guard case .invalid = ProxyHeader.parse(Array(text.utf8)) else { Issue.record("accepted: \(text)"); return }
    }

    /// 107 bytes at most, CRLF included.
    @Test func versionOneIsAtMost107Bytes() {
        let longest = "PROXY UNKNOWN " + String(repeating: "x", count: 107 - 16) + "\r\n"
        #expect(longest.utf8.count == 107)
        #expect(ProxyHeader.parse(Array(longest.utf8)) == .header(ProxyHeader(version: .v1, source: nil), length: 107))
        let over = "PROXY UNKNOWN " + String(repeating: "x", count: 108 - 16) + "\r\n"
        guard case .invalid = ProxyHeader.parse(Array(over.utf8)) else { Issue.record("a 108-byte header was accepted"); return }
    }

    @Test func limitsAreEnforced() {
        // Version 1: 107 bytes at most, so an endless line is refused, not buffered.
        guard case .invalid = ProxyHeader.parse(Array(("PROXY TCP4 " + String(repeating: "1", count: 200)).utf8)) else {
            Issue.record("an endless version 1 header was not refused"); return
        }
        // Version 2: the payload length is checked before the bytes are waited for.
        guard case .invalid = ProxyHeader.parse(ProxyHeaderTests.signature + [0x21, 0x11, 0xFF, 0xFF]) else {
            Issue.record("a 64 KiB version 2 header was not refused"); return
        }
        guard case .invalid = ProxyHeader.parse(ProxyHeaderTests.v2(family: 0x11, [1, 2, 3, 4])) else {
            Issue.record("addresses shorter than their family were accepted"); return
        }
        guard case .invalid = ProxyHeader.parse(ProxyHeaderTests.signature + [0x31, 0x11, 0, 0]) else {
            Issue.record("version 3 was accepted"); return
        }
        guard case .invalid = ProxyHeader.parse(ProxyHeaderTests.v2(command: 0x22, family: 0x11, [])) else {
            Issue.record("an unknown command was accepted"); return
        }
    }
}
