import Foundation

/// Something for the node that holds a message, posted by the node that
/// heard of it: behind a load balancer, an open, a click, an unsubscribe or
/// a bounce report about node A's message arrives at node B as often as at A.
/// The payload is the poster's to shape (`ForwardedFeedback` in the relay).
public struct InboxItem: Sendable, Equatable {
    public var id: Int64
    public var message: String
    public var payload: Data

    public init(id: Int64, message: String, payload: Data) {
        self.id = id
        self.message = message
        self.payload = payload
    }
}

/// The cluster's inbox: every node posts what belongs to a message it does
/// not hold, and every node reads it on, applying what is about its own
/// messages and taking those items out. Only the shared store has one: on
/// SQLite a node holds every message it sent.
public protocol ClusterInbox: Sendable {
    func post(message: String, payload: Data) throws
    /// Items with ids after `id`, oldest first.
    func inboxItems(after id: Int64, limit: Int) throws -> [InboxItem]
    /// The lowest id among the items posted since `time`; nil: none.
    func firstInboxItem(postedSince time: Date) throws -> Int64?
    func removeInboxItems(_ ids: [Int64]) throws
    /// Items that no node took (their message is gone): dropped after a while.
    @discardableResult
    func expireInboxItems(before cutoff: Date) throws -> Int
}
