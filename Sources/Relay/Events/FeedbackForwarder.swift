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
public final class FeedbackForwarder: Sendable {
    let inbox: any ClusterInbox
    let logger: Logger
    private let queue = DispatchQueue(label: "hikyaku.feedback-forwarder")
    private let waiting = Mutex<(engagements: [Engagement], dropped: Int, draining: Bool)>(([], 0, false))
    static let maximumWaiting = 100_000

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

    /// For the engagement recorder: engagements of messages not held here, posted on by one drainer on a
    /// queue of its own (the recorder's flush does not wait on the store). At most `maximumWaiting` wait;
    /// past that, and when the store fails, they are dropped and logged, as a node that is down loses them.
    public func forward(_ engagements: [Engagement]) {
        let start = waiting.withLock { waiting -> Bool in
            let room = max(0, FeedbackForwarder.maximumWaiting - waiting.engagements.count)
            waiting.engagements += engagements.prefix(room)
            if engagements.count > room { waiting.dropped += engagements.count - room }
            defer { waiting.draining = true }
            return !waiting.draining
        }
        guard start else { return }
        queue.async { [self] in
            while true {
                let (batch, dropped) = waiting.withLock { waiting -> ([Engagement], Int) in
                    defer { (waiting.engagements, waiting.dropped) = ([], 0) }
                    if waiting.engagements.isEmpty { waiting.draining = false }
                    return (waiting.engagements, waiting.dropped)
                }
                if dropped > 0 { logger.error("tracking: engagements of another node's messages dropped: too many waiting",
                                              metadata: ["dropped": "\(dropped)"]) }
                if batch.isEmpty { return }
                for (number, engagement) in batch.enumerated() {
                    do {
                        try forward(.engagement(engagement), about: engagement.message)
                    } catch {
                        logger.error("tracking: engagements of another node's messages not forwarded",
                                     metadata: ["count": "\(batch.count - number)", "error": "\(error)"])
                        break
                    }
                }
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
    let engagements: EngagementRecorder
    let unsubscribeStore: any SuppressionList & UnsubscribeGroupStore
    /// Applies forwarded reports; its own forwarder is off, so nothing goes round in circles.
    let feedback: FeedbackRecorder?
    let logger: Logger
    /// The last item looked at. Ids are handed out before their rows commit, so one may show after a
    /// higher one, and an item whose apply failed waits for another try: every `rescan` the inbox is read
    /// again from its first item of the last `rescanWindow`.
    private let position = Mutex<(id: Int64, since: ContinuousClock.Instant)>((0, .now))
    public static let lifetime: TimeInterval = 7 * 86400
    static let rescan: Duration = .seconds(60)
    static let rescanWindow: TimeInterval = 300

    public init(inbox: any ClusterInbox, index: QueueIndex, engagements: EngagementRecorder,
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

    /// One page of what is new; returns how many items it read (`limit`: there may be more).
    @discardableResult
    public func catchUp(limit: Int = 1000) throws -> Int {
        if position.withLock({ ContinuousClock.now - $0.since > FeedbackInboxFollower.rescan }) {
            let first = try inbox.firstInboxItem(postedSince: Date().addingTimeInterval(-FeedbackInboxFollower.rescanWindow))
            position.withLock { $0 = (min($0.id, (first ?? $0.id + 1) - 1), .now) }
        }
        let after = position.withLock { $0.id }
        let items = try inbox.inboxItems(after: after, limit: limit)
        guard let last = items.last?.id else { return 0 }
        var done: [Int64] = []
        let decoder = JSONDecoder()
        for item in items {
            guard let message = MessageID(item.message), try index.details(of: message) != nil else { continue }
            guard let forwarded = try? decoder.decode(ForwardedFeedback.self, from: item.payload) else {
                // Nothing can ever read it: taken out, so that it does not wait for its expiry.
                logger.error("forwarded feedback unreadable", metadata: ["message": "\(message)"])
                done.append(item.id)
                continue
            }
            do {
                try apply(forwarded, about: message)
                done.append(item.id)
            } catch {
                // Kept for the next rescan: the store or the index may answer then.
                logger.error("forwarded feedback not applied yet", metadata: ["message": "\(message)", "error": "\(error)"])
            }
        }
        try inbox.removeInboxItems(done)
        position.withLock { $0.id = max($0.id, last) }
        return items.count
    }

    func apply(_ item: ForwardedFeedback, about message: MessageID) throws {
        switch item {
        case .engagement(let engagement):
            // Straight into the index (the limits were the receiving node's): a failure keeps the item.
            let classifier = engagements.classifier
            _ = try index.recordEngagements([engagement]) { engagement, deliveredAt in
                classifier.isMachine(userAgent: engagement.userAgent, head: engagement.head, deliveredAt: deliveredAt, at: engagement.at)
            }
        case .unsubscribe(let position, let via, let at):
            _ = try Unsubscription.record(index: index, store: unsubscribeStore, message: message, position: position, via: via, at: at)
        case .report(let recipients, let content):
            _ = try feedback?.record(recipients: recipients, content: Array(content))
        }
    }
}
