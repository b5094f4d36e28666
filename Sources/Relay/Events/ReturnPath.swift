import Crypto
import Foundation
import Spool

/// Variable envelope return paths (VERP): each recipient's copy leaves with
/// its own envelope sender, `b-<message>-<position>-<mac>@<bounce domain>`,
/// so that a bounce arriving later names the message and recipient it is
/// about. The MAC (HMAC-SHA256, 80 bits) makes the address unforgeable:
/// nobody can make Hikyaku record a bounce or complaint for someone else.
public struct ReturnPath: Sendable {
    /// Where bounces come back; the SMTP intake accepts mail for it without AUTH.
    public let domain: String
    private let key: SymmetricKey

    public init(domain: String, key: SymmetricKey) {
        self.domain = domain.lowercased()
        self.key = key
    }

    /// The address for one recipient (by its position in the message) of a message.
    public func address(message: MessageID, position: Int) -> String {
        "b-\(message.rawValue)-\(position)-\(mac(message, position))@\(domain)"
    }

    /// The message and recipient position an address stands for; nil when it
    /// is not one of ours (another domain, malformed, or a wrong MAC).
    public func decode(_ address: String) -> (message: MessageID, position: Int)? {
        guard let at = address.lastIndex(of: "@"), address[address.index(after: at)...].lowercased() == domain else { return nil }
        let parts = address[..<at].lowercased().split(separator: "-")
        guard parts.count == 4, parts[0] == "b", let message = MessageID(String(parts[1])), let position = Int(parts[2]),
              position >= 0, position < 100_000 else { return nil }
        let expected = mac(message, position)
        guard constantTimeEqual(Array(parts[3].utf8), Array(expected.utf8)) else { return nil }
        return (message, position)
    }

    /// Whether a recipient domain is the bounce domain.
    public func handles(domain other: String) -> Bool { other.lowercased() == domain }

    private func mac(_ message: MessageID, _ position: Int) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data("\(message.rawValue):\(position)".utf8), using: key)
        return ReturnPath.base32(Array(code.prefix(10)))
    }

    static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")

    /// Crockford base32, lower case (what MessageID uses): 10 bytes → 16 characters.
    static func base32(_ bytes: [UInt8]) -> String {
        var output = ""
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return output
    }

    private func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return zip(lhs, rhs).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
