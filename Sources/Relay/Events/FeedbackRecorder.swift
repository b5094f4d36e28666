import Foundation
import Spool
import Store

/// Which failures put a recipient on its account's suppression list: the
/// address itself is bad. Policy and reputation blocks are the sender's
/// problem and never suppress the recipient; soft failures never do.
public enum AutomaticSuppression {
    public static let hardCategories: Set<String> = [
        BounceCategory.invalidRecipient.rawValue, BounceCategory.inactiveMailbox.rawValue, BounceCategory.badDomain.rawValue,
    ]

    /// `saysTheAddressIsBad`: the failure itself says so (`Classification.isEvidenceAgainstTheAddress`);
    /// a code alone, or a refusal of a command that names no recipient, never suppresses.
    public static func suppression(category: String?, hard: Bool?, saysTheAddressIsBad: Bool, recipient: String,
                                   evidence: String) -> Suppression? {
        guard hard == true, saysTheAddressIsBad, let category, hardCategories.contains(category) else { return nil }
        return Suppression(address: recipient, reason: .bounce, scope: .all, source: printable(evidence))
    }

    /// Failures that may pass (a full mailbox, a carrier's reception filter, an
    /// expiry): they suppress only when they repeat.
    public static let softCategories: Set<String> = [
        BounceCategory.mailboxFull.rawValue, BounceCategory.filtered.rawValue, BounceCategory.expired.rawValue,
    ]

    /// Soft failures suppress only when they repeat: `count` of them within `window` seconds.
    public struct SoftLimit: Sendable {
        public var count: Int
        public var window: TimeInterval

        public init(count: Int, window: TimeInterval) {
            self.count = count
            self.window = window
        }
    }

    /// The suppression for a failure of `category` (just recorded) when it is
    /// soft and the recipient has now failed softly `limit.count` times within
    /// the window; nil otherwise.
    public static func suppression(afterFailureOf recipient: String, category: String?, account: Int64, limit: SoftLimit?,
                                   index: QueueIndex, now: Date, evidence: String) -> Suppression? {
        guard let limit, limit.count > 0, let category, softCategories.contains(category),
              let failures = try? index.failureCount(accountID: account, recipient: recipient, categories: softCategories,
                                                     since: now.addingTimeInterval(-limit.window)),
              failures >= limit.count else { return nil }
        return Suppression(address: recipient, reason: .bounce, scope: .all,
                           source: printable("\(failures) soft failures in \(Int(limit.window / 86400)) days; the last: \(evidence)"))
    }

    /// Evidence quotes a remote server's reply: its control characters (a NUL, which PostgreSQL's text
    /// cannot hold) are dropped, so that the evidence never makes the suppression fail.
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
    }
}

/// Turns a report sent to the bounce domain into events on the original
/// message and recipient, which the return path names, and suppresses the
/// address when the report says so.
public struct FeedbackRecorder: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// Events recorded for this many recipients.
        case recorded(Int)
        /// Not a bounce or complaint this server can read.
        case unreadable
        /// A report, but about no message of ours.
        case unknownMessage
    }

    let index: QueueIndex
    let store: any SuppressionList & AccountStore & UnsubscribeGroupStore
    let classifier: BounceClassifier
    let returnPath: ReturnPath
    /// Decodes `u-<token>@` mailto unsubscribe addresses.
    let unsubscribe: UnsubscribeLinks?
    let softLimit: AutomaticSuppression.SoftLimit?
    let now: @Sendable () -> Date
    /// In a cluster: where reports and unsubscribes about another node's messages go.
    public var forwarder: FeedbackForwarder?

    public init(index: QueueIndex, store: any SuppressionList & AccountStore & UnsubscribeGroupStore, classifier: BounceClassifier, returnPath: ReturnPath,
                unsubscribe: UnsubscribeLinks? = nil, softLimit: AutomaticSuppression.SoftLimit? = nil,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.softLimit = softLimit
        self.index = index
        self.store = store
        self.classifier = classifier
        self.returnPath = returnPath
        self.unsubscribe = unsubscribe
        self.now = now
    }

    /// `recipients` are the envelope recipients at the bounce domain.
    public func record(recipients: [String], content: [UInt8]) throws -> Outcome {
        // The mailto form of List-Unsubscribe (RFC 2369): the address is the request, whatever the content.
        var unsubscribed = 0
        var reportRecipients: [String] = []
        for address in recipients {
            let localPart = String(address[..<(address.lastIndex(of: "@") ?? address.endIndex)])
            if let target = unsubscribe?.decode(mailbox: localPart) {
                if try Unsubscription.record(index: index, store: store, message: target.message, position: target.position,
                                             via: "mailto", at: now()) != nil {
                    unsubscribed += 1
                } else if let forwarder, try index.details(of: target.message) == nil {
                    try forwarder.forward(.unsubscribe(position: target.position, via: "mailto", at: now()), about: target.message)
                    unsubscribed += 1
                }
            } else {
                reportRecipients.append(address)
            }
        }
        if reportRecipients.isEmpty { return unsubscribed > 0 ? .recorded(unsubscribed) : .unknownMessage }
        guard let report = FeedbackReport.parse(content) else { return .unreadable }
        var targets: [(MessageID, Int)] = []
        for address in reportRecipients + report.returnPaths {
            if let target = returnPath.decode(address), !targets.contains(where: { $0 == target }) { targets.append(target) }
        }
        var recorded = 0
        // Reports about another node's messages go to that node, once per report.
        if let forwarder, let elsewhere = try targets.first(where: { try index.details(of: $0.0) == nil }) {
            try forwarder.forward(.report(recipients: reportRecipients, content: Data(content)), about: elsewhere.0)
            recorded += 1
        }
        for (message, position) in targets {
            guard let details = try index.details(of: message), position < details.recipients.count else { continue }
            let recipient = details.recipients[position].address
            let time = now()
            switch report.kind {
            case .complaint(let type):
                try index.recordFeedback(DeliveryEvent(at: time, messageID: message, recipient: recipient, type: .complained,
                                                       replyText: report.text, category: "complaint", site: "feedback"), failed: false)
                if let account = details.accountID {
                    try store.suppressAutomatically(Suppression(address: recipient, reason: .complaint, scope: .all,
                                                                source: "\(type) complaint about message \(message)"), accountID: account)
                }
            case .bounce:
                let delayed = report.action?.hasPrefix("delayed") == true
                let code = report.replyCode ?? report.enhancedCode.map { $0.statusClass * 100 + 50 } ?? 550
                let domain = recipient.split(separator: "@").last.map(String.init)
                let classification = classifier.classify(FailureObservation(
                    kind: .reply(code: code, enhanced: report.enhancedCode, text: report.text), recipientDomain: domain, command: report.command))
                let hard = !delayed && (classification.isHard || code >= 500)
                let event = DeliveryEvent(at: time, messageID: message, recipient: recipient, type: delayed ? .deferred : .bounced,
                                          replyCode: code, enhancedCode: report.enhancedCode?.description, replyText: report.text,
                                          category: classification.category.rawValue, hard: hard, site: "feedback")
                try index.recordFeedback(event, failed: !delayed)
                if !delayed, let account = details.accountID {
                    let evidence = "bounce of message \(message): \(report.text) (rule \(classification.rule))"
                    if let suppression = AutomaticSuppression.suppression(category: event.category, hard: hard,
                                                                          // A 4xx the remote MTA gave up on was a wait, not a verdict.
                                                                          saysTheAddressIsBad: classification.isEvidenceAgainstTheAddress && code >= 500,
                                                                          recipient: recipient, evidence: evidence)
                        ?? AutomaticSuppression.suppression(afterFailureOf: recipient, category: event.category, account: account,
                                                             limit: softLimit, index: index, now: time, evidence: evidence) {
                        try store.suppressAutomatically(suppression, accountID: account)
                    }
                }
            }
            recorded += 1
        }
        recorded += unsubscribed
        return recorded == 0 ? .unknownMessage : .recorded(recorded)
    }
}
