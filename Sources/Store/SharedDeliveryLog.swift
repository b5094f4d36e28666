import Foundation
import Spool

/// A cluster's delivery log: each node copies its own log's events here,
/// so that the log is searched from any node (API, command line, console).
///
/// Only the shared store has one. On SQLite a node is the whole service and
/// its queue index is the whole log; in a cluster the queue index stays the
/// node's own (written in the transaction of each state change) and is also
/// the buffer while the database is away: a node copies from its last
/// position when it can.
public protocol SharedDeliveryLog: DeliveryLogReader {
    /// The last of this node's log ids already copied; nil: nothing yet.
    func sharedLogPosition() throws -> Int64?
    /// Copies `events` (this node's, oldest first) and moves this node's
    /// position to `last`, in one transaction: each event is copied once.
    func share(_ events: [SharedEvent], through last: Int64) throws
    /// The envelope sender and the tags of an account's message, from its copied events; nil when the
    /// shared log has none of it.
    func messageEnvelope(_ id: MessageID, accountID: Int64) throws -> (sender: String?, tags: [String])?
    /// Retention: drops the days copied wholly before `cutoff`, each as one
    /// partition; returns how many days were dropped.
    @discardableResult
    func dropSharedLog(before cutoff: Date) throws -> Int
}
