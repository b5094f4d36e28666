import Crypto
import Foundation
import NIOConcurrencyHelpers
import Spool
import Store

/// One-click unsubscribe (RFC 8058) and the mailto form (RFC 2369) for
/// marketing mail: each recipient's copy carries a token naming the message
/// and the recipient, with a MAC so that nobody can unsubscribe someone else.
public final class UnsubscribeLinks: Sendable {
    /// The MAC with its key already mixed in, copied for each token (the key's two blocks are hashed once).
    private let keyed: HMAC<SHA256>
    /// `https://host` the HTTP endpoint is reached at; nil until known (see `setBase`).
    private let base = NIOLockedValueBox<String?>(nil)
    /// Where the mailto form goes (the bounce domain), if any.
    public let mailDomain: String?

    public init(key: SymmetricKey, base: String?, mailDomain: String?) {
        self.keyed = HMAC<SHA256>(key: key)
        self.base.withLockedValue { $0 = base.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } }
        self.mailDomain = mailDomain?.lowercased()
    }

    /// The base URL when none is configured: the API's own address, once bound.
    public func setBaseIfUnset(_ url: String) {
        base.withLockedValue { if $0 == nil { $0 = url } }
    }

    public func token(message: MessageID, position: Int) -> String {
        "\(message.rawValue)-\(position)-\(mac(message, position))"
    }

    public func decode(_ token: String) -> (message: MessageID, position: Int)? {
        let parts = token.lowercased().split(separator: "-")
        guard parts.count == 3, let message = MessageID(String(parts[0])), let position = Int(parts[1]), (0..<100_000).contains(position),
              Array(parts[2].utf8).count == 16 else { return nil }
        let expected = Array(mac(message, position).utf8)
        let given = Array(parts[2].utf8)
        guard zip(expected, given).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
        return (message, position)
    }

    /// The local part of the mailto address for a token (`u-<token>`), and back.
    public func mailbox(_ token: String) -> String? { mailDomain.map { "u-\(token)@\($0)" } }

    public func decode(mailbox localPart: String) -> (message: MessageID, position: Int)? {
        guard localPart.lowercased().hasPrefix("u-") else { return nil }
        return decode(String(localPart.dropFirst(2)))
    }

    /// `List-Unsubscribe` and `List-Unsubscribe-Post` for one recipient's copy.
    public func headers(message: MessageID, position: Int) -> [(name: String, value: String)] {
        let token = token(message: message, position: position)
        var targets: [String] = []
        if let base = base.withLockedValue({ $0 }) { targets.append("<\(base)/u/\(token)>") }
        if let mailbox = mailbox(token) { targets.append("<mailto:\(mailbox)?subject=unsubscribe>") }
        guard !targets.isEmpty else { return [] }
        var headers = [(name: "List-Unsubscribe", value: targets.joined(separator: ", "))]
        if targets.first?.hasPrefix("<http") == true {
            headers.append((name: "List-Unsubscribe-Post", value: "List-Unsubscribe=One-Click"))
        }
        return headers
    }

    private func mac(_ message: MessageID, _ position: Int) -> String {
        var hmac = keyed
        hmac.update(data: Array("unsubscribe:\(message.rawValue):\(position)".utf8))
        return ReturnPath.base32(Array(hmac.finalize().prefix(10)))
    }
}

/// Records that a recipient asked to stop marketing mail: an `unsubscribed`
/// event on the message, and a marketing-scope suppression for its account;
/// for mail sent in an unsubscribe group (a topic) that still exists, the
/// recipient leaves that group only and keeps receiving the others.
/// Idempotent: asking again changes nothing but the event log.
public enum Unsubscription {
    /// The address unsubscribed, or nil when the message is not on record.
    public static func record(index: QueueIndex, store: any SuppressionList & UnsubscribeGroupStore, message: MessageID, position: Int, via channel: String,
                              at time: Date = Date()) throws -> String? {
        guard let details = try index.details(of: message), details.recipients.indices.contains(position) else { return nil }
        let recipient = details.recipients[position].address
        if let account = details.accountID, let group = details.metadata?.unsubscribeGroup,
           try store.unsubscribeGroup(accountID: account, id: group) != nil {
            try store.unsubscribe([recipient], fromGroup: group, accountID: account,
                                  source: "\(channel) unsubscribe from message \(message)")
        } else if let account = details.accountID {
            // An existing suppression (a bounce, a complaint) is kept as it is; one of transactional mail only is
            // widened to all mail, so that marketing stops too.
            if let existing = try store.suppression(accountID: account, address: recipient) {
                if existing.scope == .transactional {
                    var widened = existing
                    widened.scope = .all
                    try store.suppress(widened, accountID: account)
                }
            } else {
                try store.suppress(Suppression(address: recipient, reason: .unsubscribe, scope: .marketing,
                                               source: "\(channel) unsubscribe from message \(message)"), accountID: account)
            }
        }
        let scope = details.metadata?.unsubscribeGroup.map { " from group \($0)" } ?? ""
        try index.recordFeedback(DeliveryEvent(at: time, messageID: message, recipient: recipient, type: .unsubscribed,
                                               replyText: "unsubscribed\(scope) (\(channel))", site: "feedback"), failed: false)
        return recipient
    }
}
