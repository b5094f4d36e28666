import Crypto
import Foundation
import Relay
import Spool

/// Targets for what events out read from outside: tracking tokens (anyone on
/// the Internet sends them), the HTML a tenant's mail has rewritten, and the
/// webhook URLs tenants give.
extension FuzzTargets {
    static let tracking = TrackingLinks(key: SymmetricKey(data: Array(repeating: UInt8(7), count: 32)), base: "https://t.example")

    /// First byte: 0 a token, 1 HTML to rewrite, 2 a webhook URL.
    public static func tracking(_ bytes: [UInt8]) {
        guard let selector = bytes.first else { return }
        let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
        switch selector % 3 {
        case 0:
            if let target = tracking.decode(text) {
                // Only a token this key made verifies; it names an http(s) URL or none.
                precondition(target.url.map(TrackedHTML.isTrackable) ?? true, "a token decoded to a URL that is not http(s)")
            }
        case 1:
            let id = MessageID.generate()
            let rewritten = tracking.rewrite(text, message: id, position: 1, opens: bytes.count % 2 == 0, clicks: true)
            // Every tracked link leads back to a URL that was in the input, for this message.
            for piece in rewritten.components(separatedBy: "https://t.example/t/c/").dropFirst() {
                let token = String(piece.prefix { $0 != "\"" && $0 != "'" })
                guard let target = tracking.decode(token) else { preconditionFailure("a rewritten link does not verify") }
                precondition(target.message == id && target.position == 1, "a rewritten link names another message")
            }
        default:
            if let url = WebhookURL(text) {
                precondition(url.port > 0 && url.port < 65536 && url.target.hasPrefix("/"), "an accepted URL has no usable port or path")
                _ = url.description
            }
        }
    }
}
