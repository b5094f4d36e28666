import DKIM
import Foundation
import Hummingbird
import Logging
import MIME
import NIOConcurrencyHelpers
import Relay
import Spool
import Store

/// A message ready for the spool: envelope, bytes and metadata.
struct OutgoingMessage: Sendable {
    /// Chosen before building, so that the message can name itself (unsubscribe links).
    var id = MessageID.generate()
    var sender: String
    var recipients: [String]
    var bytes: [UInt8]
    var metadata: MessageMetadata
}

/// Puts API messages into the same spool as SMTP mail, under the same
/// promise: a message id is returned only once the message is on stable
/// storage. Quotas are checked (and usage counted) before anything is written.
struct Submitter: Sendable {
    let spool: any MessageSpool
    let meter: SendingMeter
    let hostname: String
    let maximumMessageSize: Int
    /// DKIM, for the domains with a key.
    let signing: MessageSigning?

    /// Accounts send only from domains they verified (`domains.requireVerified`).
    let requireVerifiedDomains: Bool

    /// Checks that an account may use `sender` as envelope sender (one of
    /// its domains) and, with `requireVerifiedDomains`, that the sender's
    /// domain and each of `fromDomains` (default: the sender's, for messages
    /// built from it) are verified. The account may be a cached copy: a
    /// domain added or verified since is looked up in the store before
    /// refusing.
    func checkSender(_ sender: String, fromDomains: [String]? = nil, account: Account, store: SQLiteStore) throws(APIError) {
        let domain = sender.split(separator: "@").last.map { $0.lowercased() } ?? ""
        let fromDomains = fromDomains ?? [domain]
        let allowed = { (account: Account) -> Bool in
            self.requireVerifiedDomains
                ? account.verifiedDomains.contains(domain) && fromDomains.allSatisfy(account.verifiedDomains.contains)
                : account.domains.contains(domain)
        }
        var current = account
        if !allowed(current), let fresh = try? store.account(id: account.id) { current = fresh }
        guard !allowed(current) else { return }
        let reason = !current.domains.contains(domain) ? "\(domain) is not one of its domains"
            : !current.verifiedDomains.contains(domain) ? "\(domain) is not verified (publish its DKIM record, then verify it)"
            : "the From field names a domain that is not one of its verified domains"
        throw APIError(.forbidden, "sender_not_allowed", "account \(account.name) may not send from \(sender): \(reason)",
                       ses: "MailFromDomainNotVerifiedException", field: "from")
    }

    /// Spools every message or none of those the quota refuses; returns their ids in order.
    func submit(_ messages: [OutgoingMessage], account: Account, client: String) async throws(APIError) -> [MessageID] {
        if let large = messages.first(where: { $0.bytes.count > maximumMessageSize }) {
            throw APIError(.contentTooLarge, "message_too_large",
                           "message of \(large.bytes.count) bytes exceeds the limit of \(maximumMessageSize)", ses: "MessageRejected")
        }
        let recipients = messages.flatMap(\.recipients)
        let bytes = messages.reduce(0) { $0 + $1.bytes.count }
        switch meter.admit(accountID: account.id, messages: messages.count, recipients: recipients, bytes: bytes) {
        case .accepted: break
        case .rateExceeded(let wait):
            throw APIError(.tooManyRequests, "rate_exceeded", "maximum sending rate exceeded",
                           ses: "TooManyRequestsException", retryAfter: max(1, Int(wait.rounded(.up))))
        case .dailyQuotaExceeded:
            throw APIError(.tooManyRequests, "daily_quota_exceeded", "24-hour sending quota exceeded",
                           ses: "TooManyRequestsException", retryAfter: 3600)
        case .sandboxRecipient(let address):
            throw APIError(.forbidden, "sandbox_recipient",
                           "account is in the sandbox: \(address) is not in one of its domains", ses: "MessageRejected")
        case .unknownAccount:
            throw APIError.unauthorized
        }
        let now = Date()
        let incoming = messages.map { message in
            let id = message.id
            let smtpUTF8 = (message.recipients + [message.sender]).contains { $0.utf8.contains { $0 >= 0x80 } }
            var prefix = Submitter.received(client: client, hostname: hostname, id: id, account: account.name, at: now)
            if let signers = signing?.signers(for: message.bytes, accountID: account.id), !signers.isEmpty {
                prefix = MessageSigning.signatures(signers, over: prefix + message.bytes) + prefix
            }
            return IncomingMessage(
                id: id, sender: message.sender, recipients: message.recipients, accountID: account.id, smtpUTF8: smtpUTF8,
                clientAddress: client, heloName: "api", prefix: prefix, content: message.bytes, metadata: message.metadata)
        }
        let results = await withCheckedContinuation { (continuation: CheckedContinuation<[Result<MessageID, SpoolError>], Never>) in
            let remaining = NIOLockedValueBox((count: incoming.count, results: [Result<MessageID, SpoolError>?](repeating: nil, count: incoming.count)))
            for (index, message) in incoming.enumerated() {
                spool.append(message) { result in
                    let done: [Result<MessageID, SpoolError>]? = remaining.withLockedValue { state in
                        state.results[index] = result
                        state.count -= 1
                        return state.count == 0 ? state.results.map { $0! } : nil
                    }
                    if let done { continuation.resume(returning: done) }
                }
            }
        }
        let failed = zip(messages, results).filter { if case .failure = $0.1 { return true } else { return false } }
        if !failed.isEmpty {
            meter.release(accountID: account.id, messages: failed.count, recipients: failed.reduce(0) { $0 + $1.0.recipients.count },
                          bytes: failed.reduce(0) { $0 + $1.0.bytes.count })
            let accepted = results.compactMap { try? $0.get() }
            let storageFull = failed.contains { if case .failure(.insufficientStorage) = $0.1 { return true } else { return false } }
            var message = storageFull ? "insufficient storage" : "the spool is unavailable"
            if !accepted.isEmpty { message += "; accepted before the failure: " + accepted.map(\.rawValue).joined(separator: ",") }
            throw APIError(storageFull ? HTTPResponse.Status(code: 507) : .serviceUnavailable, "spool_unavailable", message,
                           ses: "InternalFailure", retryAfter: 60)
        }
        return results.compactMap { try? $0.get() }
    }

    /// The trace field for mail received over HTTP (RFC 5321 §4.4).
    static func received(client: String, hostname: String, id: MessageID, account: String, at date: Date) -> [UInt8] {
        Array("Received: from [\(client)] (account \(account))\r\n\tby \(hostname) (Hikyaku) with HTTP id \(id);\r\n\t\(MailDate.rfc5322(date))\r\n".utf8)
    }
}
