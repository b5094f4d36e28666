import Crypto
import Foundation
import NIOConcurrencyHelpers
import Spool
import Store

/// Variable envelope return paths (VERP): each recipient's copy leaves with
/// its own envelope sender, `b-<message>-<position>-<mac>@<bounce domain>`,
/// so that a bounce arriving later names the message and recipient it is
/// about. The MAC (HMAC-SHA256, 80 bits) makes the address unforgeable:
/// nobody can make Hikyaku record a bounce or complaint for someone else.
///
/// The bounce domain is the sending domain's own return-path domain when it
/// has a verified one (`ReturnPathDirectory`: SPF then aligns with the From
/// domain for DMARC), else the server's `bounce.domain`; with neither, mail
/// keeps its sender.
public struct ReturnPath: Sendable {
    /// The server's bounce domain (`bounce.domain`), for senders without their own.
    public let domain: String?
    private let key: SymmetricKey
    private let directory: ReturnPathDirectory?

    public init(domain: String?, key: SymmetricKey, directory: ReturnPathDirectory? = nil) {
        self.domain = domain?.lowercased()
        self.key = key
        self.directory = directory
    }

    /// The bounce domain for mail from `sender`, or nil when it keeps its sender.
    public func domain(forSender sender: String) -> String? {
        guard let at = sender.lastIndex(of: "@") else { return domain }
        return directory?.returnPath(forSendingDomain: sender[sender.index(after: at)...].lowercased()) ?? domain
    }

    /// The address for one recipient (by its position in the message) of a message, at `domain`.
    public func address(message: MessageID, position: Int, domain: String) -> String {
        "b-\(message.rawValue)-\(position)-\(mac(message, position))@\(domain)"
    }

    /// The message and recipient position an address stands for; nil when it
    /// is not one of ours (not a bounce domain, malformed, or a wrong MAC).
    public func decode(_ address: String) -> (message: MessageID, position: Int)? {
        guard let at = address.lastIndex(of: "@"), handles(domain: String(address[address.index(after: at)...])) else { return nil }
        let parts = address[..<at].lowercased().split(separator: "-")
        guard parts.count == 4, parts[0] == "b", let message = MessageID(String(parts[1])), let position = Int(parts[2]),
              position >= 0, position < 100_000 else { return nil }
        let expected = mac(message, position)
        guard constantTimeEqual(Array(parts[3].utf8), Array(expected.utf8)) else { return nil }
        return (message, position)
    }

    /// Whether a recipient domain is a bounce domain: the server's or a sending domain's verified one.
    public func handles(domain other: String) -> Bool {
        let other = other.lowercased()
        return other == domain || directory?.contains(returnPath: other) == true
    }

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

/// The sending domains' own return-path domains (`hikyaku domain return-path`),
/// those whose MX `domain verify` found pointing at this server: only then can
/// bounces reach it. Read from the store and re-read every 5 s, so a domain
/// set up with the CLI applies without a restart.
public final class ReturnPathDirectory: Sendable {
    private let load: @Sendable () throws -> [String: String]
    private let cache = NIOLockedValueBox<(bySendingDomain: [String: String], returnPaths: Set<String>, loaded: ContinuousClock.Instant?)>(
        ([:], [], nil))

    public convenience init(store: any ReturnPathStore) {
        self.init { try store.verifiedReturnPaths() }
    }

    /// `load`: sending domain → its return-path domain.
    public init(load: @escaping @Sendable () throws -> [String: String]) {
        self.load = load
    }

    public func returnPath(forSendingDomain domain: String) -> String? {
        current { $0.bySendingDomain[domain] }
    }

    public func contains(returnPath domain: String) -> Bool {
        current { $0.returnPaths.contains(domain) }
    }

    private func current<T>(_ body: ((bySendingDomain: [String: String], returnPaths: Set<String>, loaded: ContinuousClock.Instant?)) -> T) -> T {
        let now = ContinuousClock.now
        return cache.withLockedValue { cache in
            if cache.loaded.map({ now - $0 > .seconds(5) }) ?? true {
                if let loaded = try? load() { (cache.bySendingDomain, cache.returnPaths) = (loaded, Set(loaded.values)) }
                cache.loaded = now
            }
            return body(cache)
        }
    }
}
