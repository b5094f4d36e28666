import Foundation
import Logging
import Spool
import Store
import Synchronization

/// What a node heard about a message another node of the cluster holds:
/// applied there as if it had arrived there.
public enum ForwardedFeedback: Codable, Sendable, Equatable {
    /// An open or a click (`EngagementRecorder`).
    case engagement(Engagement)
    /// A one-click or mailto unsubscribe of the recipient at `position` (`Unsubscription`).
    case unsubscribe(position: Int, via: String, at: Date)
    /// A report to the bounce domain: its envelope recipients and its bytes (`FeedbackRecorder`).
    case report(recipients: [String], content: Data)

    /// A report larger than this is not forwarded (a DSN or an ARF report is a few kilobytes).
    public static let maximumReportSize = 1 << 20
}

/// Posts to the cluster's inbox what belongs to another node's message. A
/// failure to post is logged: the store is away, and what was heard is lost
/// as it would be by a node that is down.
public struct FeedbackForwarder: Sendable {
    let inbox: any ClusterInbox
    let logger: Logger

    public init(inbox: any ClusterInbox, logger: Logger) {
        self.inbox = inbox
        self.logger = logger
    }

    public func forward(_ item: ForwardedFeedback, about message: MessageID) throws {
        if case .report(_, let content) = item, content.count > ForwardedFeedback.maximumReportSize {
            logger.warning("report about another node's message not forwarded: too large", metadata: ["message": "\(message)"])
            return
        }
        try inbox.post(message: message.rawValue, payload: try JSONEncoder().encode(item))
    }

    /// For the engagement recorder: each engagement of a message not held here, posted on.
    public func forward(_ engagements: [Engagement]) {
        for engagement in engagements {
            do {
                try forward(.engagement(engagement), about: engagement.message)
            } catch {
                logger.error("tracking: engagement of another node's message not forwarded", metadata: ["error": "\(error)"])
                return
            }
        }
    }
}

/// Reads the cluster's inbox on from where it last looked, applies what is
/// about this node's messages, and takes those items out. Items about
/// messages no node holds any more expire after `FeedbackInboxFollower.lifetime`.
public final class FeedbackInboxFollower: Sendable {
    let inbox: any ClusterInbox
    let index: QueueIndex
    let engagements: EngagementRecorder?
    let unsubscribeStore: any SuppressionList & UnsubscribeGroupStore
    /// Applies forwarded reports; its own forwarder is off, so nothing goes round in circles.
    let feedback: FeedbackRecorder?
    let logger: Logger
    /// The last item looked at: each node reads every item once per run, its own or not.
    private let position = Mutex<Int64>(0)
    public static let lifetime: TimeInterval = 7 * 86400

    public init(inbox: any ClusterInbox, index: QueueIndex, engagements: EngagementRecorder?,
                unsubscribeStore: any SuppressionList & UnsubscribeGroupStore, feedback: FeedbackRecorder?, logger: Logger) {
        self.inbox = inbox
        self.index = index
        self.engagements = engagements
        self.unsubscribeStore = unsubscribeStore
        var recorder = feedback
        recorder?.forwarder = nil
        self.feedback = recorder
        self.logger = logger
    }

    /// One pass over what is new; returns how many items it applied.
    @discardableResult
    public func catchUp(limit: Int = 500) throws -> Int {
        let after = position.withLock { $0 }
        let items = try inbox.inboxItems(after: after, limit: limit)
        guard let last = items.last?.id else { return 0 }
        var applied: [Int64] = []
        let decoder = JSONDecoder()
        for item in items {
            guard let message = MessageID(item.message), try index.details(of: message) != nil else { continue }
            do {
                try apply(try decoder.decode(ForwardedFeedback.self, from: item.payload), about: message)
            } catch {
                // Unreadable or failing: taken out all the same, so that one item cannot hold the inbox.
                logger.error("forwarded feedback not applied", metadata: ["message": "\(message)", "error": "\(error)"])
            }
            applied.append(item.id)
        }
        try inbox.removeInboxItems(applied)
        position.withLock { $0 = last }
        return applied.count
    }

    func apply(_ item: ForwardedFeedback, about message: MessageID) throws {
        switch item {
        case .engagement(let engagement):
            engagements?.record(engagement)
        case .unsubscribe(let position, let via, let at):
            _ = try Unsubscription.record(index: index, store: unsubscribeStore, message: message, position: position, via: via, at: at)
        case .report(let recipients, let content):
            _ = try feedback?.record(recipients: recipients, content: Array(content))
        }
    }
}
